"""HTTP API: routes per resource under controller/api/routes/."""
