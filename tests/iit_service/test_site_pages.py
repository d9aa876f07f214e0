"""The pages a person opens in a browser: the landing page at / and the API docs."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


@override_settings(DEBUG=True)  # where Django would otherwise show its debug 404
def test_the_landing_page_links_to_the_api_docs_the_admin_and_health(client):
    response = client.get("/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    links = set(re.findall(r'href="([^"]+)"', response.content.decode()))
    assert {"/api/docs/", "/api/schema/", "/admin/", "/admin/monitoring/console/", "/health"} == links


def test_every_landing_page_link_answers(client, staff):
    links = re.findall(r'href="([^"]+)"', client.get("/").content.decode())
    client.force_login(staff)
    for link in links:
        assert client.get(link).status_code in (200, 503), link  # /health is 503 when something is down


def test_the_landing_page_refuses_a_post_in_the_error_shape(client):
    response = client.post("/")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["status"] == 405


def test_an_anonymous_visit_to_the_api_docs_returns_there_after_the_admin_login(client, staff):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and response["Location"] == "/admin/login/?next=/api/docs/"
    login = client.post(response["Location"], {"username": "staff", "password": PASSWORD, "next": "/api/docs/"})
    assert login.status_code == 302 and login["Location"] == "/api/docs/"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
