"""The bottom layer: what every other package may use and which uses none of them (atomic
writes of records, the exception types reported to users as one line)."""
