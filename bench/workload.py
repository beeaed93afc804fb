"""The workload under test: the dashboard query, the seeded shape and the bench user."""

from dataclasses import dataclass

import orjson

DASHBOARD_QUERY = (
    "query Dashboard($first: Int!) { tasks(first: $first, orderBy: {field: CREATED_AT, direction: DESC}) "
    "{ edges { node { id status originalFilename fileSize createdAt analysis { verdict complianceScore "
    "confidenceScore findings { severity ruleId message remediation } } } } } }"
)
LOGIN_MUTATION = (
    "mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"
)

PAGE_SIZES = (10, 50, 200)
MAIN_PAGE_SIZE = 50
# Every server answers the largest page measured (the API's default limit is 100).
MAX_PAGE_SIZE = max(PAGE_SIZES)

BENCH_PASSWORD = "bench-password-123"
# The user whose dashboard every request reads.
BENCH_USER_INDEX = 0


def user_email(index: int) -> str:
    return f"bench-user-{index}@example.com"


@dataclass(frozen=True)
class Scale:
    """How big the seeded database is. Factor 1 is the workload of the issue."""

    factor: int = 1
    users: int = 100
    tasks_per_user: int = 200
    findings_per_task: int = 10

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError("the scale factor is a positive integer")

    @property
    def user_tasks(self) -> int:
        # A larger database gives each user a longer history, which is what a
        # dashboard that reads "the newest page" must not pay for.
        return self.tasks_per_user * self.factor

    @property
    def total_tasks(self) -> int:
        return self.users * self.user_tasks

    @property
    def total_findings(self) -> int:
        return self.total_tasks * self.findings_per_task

    def describe(self) -> str:
        return (f"{self.users:,} users, {self.total_tasks:,} tasks (one analysis each), "
                f"{self.total_findings:,} findings")


def dashboard_body(first: int) -> bytes:
    return orjson.dumps({"query": DASHBOARD_QUERY, "variables": {"first": first}, "operationName": "Dashboard"})


def login_body(email: str, password: str) -> bytes:
    return orjson.dumps({"query": LOGIN_MUTATION, "variables": {"email": email, "password": password},
                         "operationName": "Login"})
