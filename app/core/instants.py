"""The one datetime type for instants a client sends: with an offset, and representable in
UTC.

`0001-01-01T00:00:00+14:00` parses (Python allows year 1 with any offset) but is in year 0
once converted to UTC: comparing it, binding it or adding to it raises OverflowError, a 500.
`BoundedDatetime` refuses what cannot be converted, so what a route receives can always be
turned into UTC. Routes that add to an instant still check their own sums (the slots route
answers 422 past its horizon).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def check_instant(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("the instant is out of range once converted to UTC "
                         "(years 1 to 9999)") from None
    return value


BoundedDatetime = Annotated[AwareDatetime, AfterValidator(check_instant)]
