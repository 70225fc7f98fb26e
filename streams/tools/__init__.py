"""Operators' and analysts' tools over the topics: reports, ``policy explain``, the policy
reference, erasure requests, consent trails, the watermark."""
