from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class askrequest(_message.Message):
    __slots__ = ("prompt", "conversation_id", "parent_id")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    conversation_id: str
    parent_id: str
    def __init__(self, prompt: _Optional[str] = ..., conversation_id: _Optional[str] = ..., parent_id: _Optional[str] = ...) -> None: ...

class askresponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: str
    def __init__(self, response: _Optional[str] = ...) -> None: ...
