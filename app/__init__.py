"""The few-shot classification web service: routers, services, repositories."""
