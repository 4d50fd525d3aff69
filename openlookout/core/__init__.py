"""What the services and the protocol layer share: errors, ARNs, paging tokens, S3 names.

Neutral ground: nothing here imports `openlookout.api`, `openlookout.services` or the storage.
"""
