"""The database below the models: engine settings (``engine``), the schema revision
(``schema``), SQLite's queue of writers (``sqlite_writers``), and the driver-level reads and
writes of the token endpoint (``dbapi``)."""
