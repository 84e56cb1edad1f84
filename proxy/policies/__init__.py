"""Rules the chat service applies to every request before the model sees it, whatever the face.

Each policy looks at an `Admission` and allows it (returns), refuses it (raises a ClientError),
rewrites the conversation, adds a notice to send first, or answers it without the model.
"""

from proxy.policies.admission import Admission, ChatPolicy, Gate

__all__ = ["Admission", "ChatPolicy", "Gate"]
