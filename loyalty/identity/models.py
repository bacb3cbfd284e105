"""Tables of linking and member codes. No code and no phone number is stored in clear (see keys.py)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow


class LinkChallenge(Base):
    """One SMS code sent to prove a chat belongs to a member: who asked, for whom, and how it went.

    ``status``: pending (may be entered), used, locked (too many wrong tries),
    superseded (a newer code was sent), failed (the SMS was refused), void (the
    member closed the account).
    """

    __tablename__ = "link_challenges"
    __table_args__ = (Index("ix_link_challenges_identity", "channel", "external_id", "id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    channel: Mapped[str] = Column(String(20), nullable=False)
    external_id: Mapped[str] = Column(String(128), nullable=False)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    # Where the code went: a keyed hash (for the daily cap) and the masked number (for the screen).
    phone_key: Mapped[str] = Column(String(64), nullable=False)
    phone_masked: Mapped[str] = Column(String(16), nullable=False)
    # An agent's link for a shopper whose number changed: the new number, set on the member once proven.
    new_phone: Mapped[str | None] = Column(String(20), nullable=True)
    nonce: Mapped[str] = Column(String(32), nullable=False)
    code_hash: Mapped[str] = Column(String(64), nullable=False)
    status: Mapped[str] = Column(String(12), nullable=False)
    tries: Mapped[int] = Column(Integer, default=0, nullable=False)
    last_outcome: Mapped[str | None] = Column(String(12), nullable=True)
    started_by: Mapped[str] = Column(String(64), nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class SendQuota(Base):
    """Codes sent today and the last send, per phone number and per chat (keyed hashes): cool-down and daily caps."""

    __tablename__ = "code_send_quotas"

    key: Mapped[str] = Column(String(80), primary_key=True)
    day: Mapped[date] = Column(Date, nullable=False)
    count: Mapped[int] = Column(Integer, nullable=False)
    last_sent_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)


class WeChatUnion(Base):
    """The UnionID WeChat gave for an openid (the same person across the brand's WeChat apps).

    ``union_id`` is unknown (NULL) for an openid unlinked before WeChat told its UnionID.
    """

    __tablename__ = "wechat_unions"

    openid: Mapped[str] = Column(String(128), primary_key=True)
    union_id: Mapped[str | None] = Column(String(128), index=True, nullable=True)
    seen_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    # The shopper unlinked this openid: it is not linked again by UnionID, only by an SMS code.
    unlinked_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class MemberCodeKey(Base):
    """Per member: the salt its member-code secret is derived from, and how many codes it was shown."""

    __tablename__ = "member_code_keys"

    member_id: Mapped[int] = Column(ForeignKey("members.id"), primary_key=True)
    salt: Mapped[str] = Column(String(32), nullable=False)
    counter: Mapped[int] = Column(BigInteger, default=0, nullable=False)


class MemberCode(Base):
    """One member code as shown: valid until ``expires_at``, used at most once."""

    __tablename__ = "member_codes"
    __table_args__ = (UniqueConstraint("code", "step"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(16), index=True, nullable=False)
    step: Mapped[int] = Column(BigInteger, nullable=False)
    counter: Mapped[int] = Column(BigInteger, nullable=False)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    issued_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    used_by: Mapped[str | None] = Column(String(40), nullable=True)
