"""The mentor's own profile: capacity, specialties, languages and availability."""

from fastapi import APIRouter

from app.core.auth import CurrentMentor
from app.core.db import DbSession
from app.core.problems import problems
from app.schemas.sessions import MentorProfilePublic, MentorProfileUpdate
from app.services.mentors import profile

router = APIRouter()


@router.get(
    "/api/v1/mentor/profile",
    tags=["mentor profile"],
    operation_id="get_mentor_profile",
    summary="Your capacity, specialties, availability and this week's load",
    response_model=MentorProfilePublic,
    responses=problems({404: ["not_found"]}),
)
async def get_mentor_profile(principal: CurrentMentor, session: DbSession) -> MentorProfilePublic:
    return await profile.get_profile(session, principal=principal)


@router.put(
    "/api/v1/mentor/profile",
    tags=["mentor profile"],
    operation_id="put_mentor_profile",
    summary="Change your capacity, specialties, availability, buffer or notice (fields left "
            "out keep their values)",
    response_model=MentorProfilePublic,
    responses=problems({404: ["not_found"]}),
)
async def put_mentor_profile(body: MentorProfileUpdate, principal: CurrentMentor,
                             session: DbSession) -> MentorProfilePublic:
    return await profile.update_profile(session, principal=principal, changes=body)
