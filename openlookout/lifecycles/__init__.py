"""One owner per resource for its statuses, their transitions, their messages and how they are written.

The API (services/) changes a status with `change`: a conditional write, a lost race is a
ConflictException. A workflow step records its outcome with `record`: the workflow owns the item
while it runs, so a lost version check is retried on a fresh read, a bounded number of times, and
every retry is logged.
"""
