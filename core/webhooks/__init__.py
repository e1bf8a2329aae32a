"""Webhooks: a tenant's endpoints, told when its jobs finish, signed per Standard
Webhooks 1.0 and delivered at least once (`docs/webhooks.md`)."""
