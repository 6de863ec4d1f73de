"""Staff checks from policies/004_*: a therapist is HCPC registered."""

from __future__ import annotations

from tests.support.visits import People

THERAPIST = {"name": "Theo Therapist", "email": "theo@school.example.org", "roles": ["practitioner"],
             "is_therapist": True, "dbs_level": "enhanced_barred", "dbs_checked_on": "2026-10-01",
             "safeguarding_training_on": "2026-10-01"}


async def test_a_therapist_needs_an_hcpc_number(people: People) -> None:
    status, problem = await people.post("admin", "/api/v1/staff", THERAPIST)
    assert status == 422 and problem["field"] == "hcpc_number"
    status, created = await people.post("admin", "/api/v1/staff", THERAPIST | {"hcpc_number": "AS12345"})
    assert status == 201, created


async def test_the_head_of_service_is_a_role_staff_can_be_given(people: People) -> None:
    head = {"name": "Hana Head", "email": "hana@school.example.org", "roles": ["head_of_service", "manager"]}
    status, created = await people.post("admin", "/api/v1/staff", head)
    assert status == 201 and created["roles"] == ["head_of_service", "manager"], created
    status, problem = await people.post("admin", "/api/v1/staff", head | {"email": "h2@school.example.org",
                                                                          "roles": ["headteacher"]})
    assert status == 422 and problem["field"] == "roles.0" and "'head_of_service'" in problem["detail"], problem
