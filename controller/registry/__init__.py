"""The pole registry: what stands where, who owns it, and what the operators told it to do."""
