"""Array functions: each takes its namespace from its inputs (array API) or a backend."""
