"""The SQLite metadata database and namespaces."""

from ctrpy.metadata.db import SCHEMA_VERSION, Database
from ctrpy.metadata.namespaces import NamespaceStore

__all__ = ["SCHEMA_VERSION", "Database", "NamespaceStore"]
