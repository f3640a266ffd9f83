"""Whether the channel layer (Redis, in production) is reachable, said once when it goes and
once when it is back, instead of once per append or per retry.

Nothing depends on the layer for correctness: notifications only make readers faster, and the
hub's tail re-check (``STREAMDASH_TAIL_CHECK_SECONDS``) finds every commit without them. So a
layer outage degrades live reads to the re-check's pace; the hub rejoins its groups when the
layer is back (``apps.streams.hub``).
"""

from __future__ import annotations

import logging

from streamdash.core import metrics
from streamdash.core.outage import Outage

logger = logging.getLogger("streamdash.layer")

# For a consumer's ``channel_layer_alias``: no layer is configured under it, so Channels gives
# the socket no channel of its own. Channels subscribes that channel in Redis before the
# handshake, which made every socket fail while Redis was away; sockets hear what they need
# through the hub instead (``Hub.listen``, ``apps.streams.live.follow``).
NO_CHANNEL_LAYER = "streamdash.no-layer"


class LayerHealth(Outage):
    def __init__(self) -> None:
        super().__init__(
            logger,
            gone="channel layer unavailable (%s: %s); live reads continue at the tail "
            "re-check's pace until it is back",
            back="channel layer is back after %.1f s",
        )

    def failed(self, what: str, exc: BaseException) -> None:
        metrics.layer_error(what)
        super().failed(what, exc)


health = LayerHealth()
