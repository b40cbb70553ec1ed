"""The sipwave KEMI router: per-request SIP routing executed inside Kamailio workers."""

from sipwave_router.routing import Router
from sipwave_router.settings import Settings, load_settings

__all__ = ["Router", "Settings", "load_settings"]
