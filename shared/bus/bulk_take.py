"""Taking what a queue already holds in one Redis round trip, with kombu's ack bookkeeping.

kombu's Redis transport delivers one message per ``BRPOP`` and then writes the
message into its ``unacked`` hash and index in a second round trip: two round
trips and a few hundred microseconds of Python per message, which is most of a
consumer's cost once handlers are set-based. When a backlog is waiting (the
nightly flood, a burst of purchases), :class:`BulkTake` pops up to N messages
with one Lua script that, in the same atomic step, records each one in the
``unacked`` hash and index exactly as kombu's ``QoS.append`` does. The messages
then become ordinary kombu messages of the consumer's channel:

- ``ack_many`` (and ``Message.ack``) remove them from the same keys;
- kombu's visibility sweep restores them if the worker dies before acking;
- a channel closed cleanly restores the unacked ones, as for any delivery.

Being one script, a message is always either in the queue or in the unacked
hash, never in neither: the crash window between kombu's ``BRPOP`` and its
``HSET`` does not exist here. The entry names the anonymous exchange and the queue
itself as where a restore goes (kombu's ``[message, exchange, routing key]`` form):
kombu would otherwise route a restored message by its topic again, to every queue
bound to it, and hand a copy to services that had already applied theirs (their
inboxes would drop it, but a sweep after one worker's crash would wake them all).
What kombu's own ``BRPOP`` delivers (the first message of a quiet queue) keeps
kombu's form. Only the base list of the queue is read (kombu
keeps priority 0 there, which is what every producer of the bus sends); any
message on a priority sub-list still arrives through the ordinary ``BRPOP``.
"""
from __future__ import annotations

import json
import time
from typing import Any

from kombu.message import Message
from kombu.transport.virtual.base import QoS as VirtualQoS

# KEYS: queue list, unacked hash, unacked index; ARGV: how many, the time of delivery.
# The hash entry restores the message to this queue only (the anonymous exchange, the queue's name).
_TAKE = """
local taken = {}
local back_to = ',"",' .. cjson.encode(KEYS[1]) .. ']'
for _ = 1, tonumber(ARGV[1]) do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  local tag = cjson.decode(item)['properties']['delivery_tag']
  redis.call('ZADD', KEYS[3], ARGV[2], tag)
  redis.call('HSET', KEYS[2], tag, '[' .. item .. back_to)
  taken[#taken + 1] = item
end
return taken
"""


class BulkTake:
    """Pops up to ``limit`` queued messages of one queue for one kombu Redis channel."""

    def __init__(self, channel: Any, queue: str):
        self.channel = channel
        self.queue = queue
        self._script: Any = None

    @staticmethod
    def supported(channel: Any) -> bool:
        """Only kombu's Redis channel with ack emulation keeps the keys this script writes."""
        qos = getattr(channel, "qos", None)
        return (getattr(channel, "ack_emulation", False) and not getattr(channel, "global_keyprefix", "")
                and hasattr(qos, "unacked_key") and hasattr(qos, "unacked_index_key"))

    def take(self, limit: int) -> list[Message]:
        if limit <= 0:
            return []
        qos = self.channel.qos
        with self.channel.conn_or_acquire() as client:
            if self._script is None:
                self._script = client.register_script(_TAKE)
            raw = self._script(keys=[self.queue, qos.unacked_key, qos.unacked_index_key],
                               args=[limit, repr(time.time())], client=client)
        messages = []
        for item in raw:
            message = self.channel.Message(json.loads(item), channel=self.channel)
            VirtualQoS.append(qos, message, message.delivery_tag)  # the in-memory half of QoS.append
            messages.append(message)
        return messages
