"""Talking to the app the way a client does: GraphQL over HTTP, with or without a token."""

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from db.engine import Database
from db.enums import Role
from db.users import register_user

PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: httpx.AsyncClient
    database: Database

    async def post(self, query: str, variables: dict[str, Any] | None = None,
                   token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                          headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None,
                   token: str | None = None) -> dict[str, Any]:
        body = await self.post(query, variables, token)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def upload(self, query: str, variables: dict[str, Any], files: dict[str, tuple[str, bytes] | tuple[str, bytes, str]],
                     token: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """A GraphQL multipart request: each key of `files` is a variable path such as "file"."""
        names = {str(number): path for number, path in enumerate(files)}
        operations = {"query": query, "variables": variables}
        file_map = {number: [f"variables.{path}"] for number, path in names.items()}
        sent = {"Apollo-Require-Preflight": "true"} if headers is None else headers
        if token:
            sent = {**sent, "Authorization": f"Bearer {token}"}
        return await self.client.post(
            "/graphql",
            data={"operations": orjson.dumps(operations).decode(), "map": orjson.dumps(file_map).decode()},
            files={number: files[path] for number, path in names.items()},
            headers=sent,
        )

    async def sign_up(self, email: str, role: Role = Role.USER) -> str:
        """Create an account of any role directly (as an operator would), then log in over HTTP."""
        async with self.database.transaction() as session:
            await register_user(session, email, PASSWORD, role)
        return await self.login(email)

    async def login(self, email: str, password: str = PASSWORD) -> str:
        data = await self.data(LOGIN, {"email": email, "password": password})
        return data["login"]["token"]


LOGIN = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
