"""The collectors' and operators' desk: an HTTP API and server-rendered pages.

The desk is an outside system of the contract (docs/events.md): it reads the three
services' databases through the command line's read models and sends commands as
events on the bus, never by calling a service. Its own database keeps users, the
assignment of accounts to collectors, the commands it sent with their replies, and
the audit log.
"""
