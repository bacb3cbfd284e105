"""Stores and the product catalogue."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(32), unique=True, nullable=False)
    name_zh: Mapped[str] = Column(String(100), nullable=False)
    name_en: Mapped[str] = Column(String(100), nullable=False)
    city: Mapped[str] = Column(String(50), nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = Column(Integer, primary_key=True)
    sku: Mapped[str] = Column(String(64), unique=True, nullable=False)
    name_zh: Mapped[str] = Column(String(200), nullable=False)
    name_en: Mapped[str] = Column(String(200), nullable=False)
    category: Mapped[str] = Column(String(50), index=True, nullable=False)
    price_fen: Mapped[int] = Column(Integer, nullable=False)
    stock: Mapped[int] = Column(Integer, default=0, nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
