"""One member on every channel: SMS one-time codes, linking chats to members, WeChat UnionID, member codes.

models: tables; keys: the identity secret and keyed hashes; otp: one-time codes and their send limits;
service: linking and unlinking; member_codes: the time-based member code tills scan; render: its QR image."""
