"""Server-rendered pages for citizens and clinicians (``/app``), on the same
access rules as the API: a development or real bearer token, kept in a
same-site, HTTP-only cookie, is verified on every request."""

from .pages import router

__all__ = ["router"]
