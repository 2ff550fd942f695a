"""ROLE=loadgen: simulated people chatting against a running deployment, measured as they feel it.

target.py finds the api from the URL given; person.py is one person (client.py
its browser's requests, sse.py its stream, chatter.py what it says);
ledger.py matches sent messages to other people's streams; measure.py counts
it all; run.py runs the whole thing, report.py words it for the log and
endpoints.py serves /metrics, the probes and the running summary.
"""

from .run import run_loadgen

__all__ = ["run_loadgen"]
