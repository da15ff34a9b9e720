"""SQLite persistence for the test server: one module per table (or pair of tables).

Each server keeps one database file in its data directory (:mod:`.database`). A request
handler gets a :class:`Transaction`, which carries the access methods of every table: users
and credentials, projects, tasks, labels, frames, jobs, uploads, background requests and
annotations, each defined in the module of that name next to its part of the schema.
"""

from .annotations import IdConflictError
from .database import Storage
from .transaction import Transaction

__all__ = ["IdConflictError", "Storage", "Transaction"]
