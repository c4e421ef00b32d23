"""Mapping engines: declarative mapping files (``mappings/``) compiled once
into plain Python objects and applied per message."""
