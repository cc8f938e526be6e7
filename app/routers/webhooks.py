"""Routes of this area are added by the issue that owns it."""

from fastapi import APIRouter

router = APIRouter()
