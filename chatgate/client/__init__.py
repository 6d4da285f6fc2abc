"""The terminal client's view of a chatgate: in this process, or a server over its API."""

from chatgate.client.base import ChatClient, Finished, Options, ReplyEvent

__all__ = ["ChatClient", "Finished", "Options", "ReplyEvent"]
