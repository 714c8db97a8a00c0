"""Alembic revisions of the Spark schema, one file per revision (``000N_<what>.py``)."""
