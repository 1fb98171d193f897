"""lsr beyond one machine, on Ray: distributed encoding (Ray Data) and sharded search (Ray Serve).

Nothing here imports Ray at ``import lsr.cluster``; each module imports it where it is used, so the rest of lsr runs on
machines without it (``pip install lsr[ray]``).
"""
