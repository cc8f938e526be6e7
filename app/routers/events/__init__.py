"""Events: inbound events and user provisioning (`inbound`), the admin webhook routes
(`webhooks`)."""
