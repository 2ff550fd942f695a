"""The doctor: ``python -m synergychat doctor URL`` finds what is miswired in a deployment.

It sees a deployment only the way its users do, over HTTP: it imports no role and no
store. ``cli`` parses the arguments and prints the report; ``checks`` walks the hops in
order, ``walk`` is what they share (the report), and ``page_hops``, ``api_hops`` and
``call_hops`` are the hops; ``page`` reads the page like a browser; ``http`` makes the
requests; ``advice`` holds the sentences several hops share. See docs/DOCTOR.md.
"""

from .cli import main

__all__ = ["main"]
