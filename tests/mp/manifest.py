# What the tests' MicroPython trees carry (tests/harness/mpy.py): the node with its simulated
# board, and the controller's codec, which test scripts use to check what the node sends
# (run_vectors.py, roundtrip_node.py). The schema tools (checkgen, export_schemas) stay out.

include("../../firmware/manifest_sim.py")
package("protocols", files=["codec.py", "schema_defs.py", "validate.py"], base_path="../..")
