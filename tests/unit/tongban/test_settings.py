"""Settings: read once, validated with a message naming the variable, secrets never printed."""

import pytest

from tongban.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_ones() -> None:
    s = load_settings({})
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith(
        "var/tongban.sqlite3"
    )
    assert s.recordings_url.startswith("file:///") and s.sms_provider == "log"
    assert s.redis_url is None and s.ice_servers == () and s.ring_timeout == 60
    assert s.ring_limit == 300 and s.miss_limit == 3 and s.retention_months == 6


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TONGBAN_RING_TIMEOUT": "soon"}, "TONGBAN_RING_TIMEOUT"),
        ({"TONGBAN_RING_TIMEOUT": "400"}, "TONGBAN_RING_LIMIT"),
        ({"TONGBAN_SMS_PROVIDER": "carrier-pigeon"}, "TONGBAN_SMS_PROVIDER"),
        ({"TONGBAN_SMS_PROVIDER": "aliyun"}, "TONGBAN_ALIYUN_ACCESS_KEY_ID"),
        ({"TONGBAN_ICE_SERVERS": "{not json"}, "TONGBAN_ICE_SERVERS"),
        ({"TONGBAN_ICE_SERVERS": '[{"url": "x"}]'}, "TONGBAN_ICE_SERVERS"),
        ({"TONGBAN_DATABASE_URL": "mysql://x"}, "TONGBAN_DATABASE_URL"),
        ({"TONGBAN_TLS_CERT": "/x.pem"}, "TONGBAN_TLS_CERT"),
        ({"TONGBAN_REDIS_URL": "redis://127.0.0.1"}, "TONGBAN_REDIS_URL"),
        ({"TONGBAN_RETENTION_MONTHS": "0"}, "TONGBAN_RETENTION_MONTHS"),
        ({"TONGBAN_MEDIA_WORKERS": "many"}, "TONGBAN_MEDIA_WORKERS"),
        ({"TONGBAN_MEDIA_WORKERS": "-2"}, "TONGBAN_MEDIA_WORKERS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


def test_media_workers_default_to_one_per_core() -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    assert load_settings({}).media_worker_count == cores
    assert load_settings({"TONGBAN_MEDIA_WORKERS": "auto"}).media_worker_count == cores
    assert load_settings({"TONGBAN_MEDIA_WORKERS": "0"}).media_worker_count == 0
    assert load_settings({"TONGBAN_MEDIA_WORKERS": "3"}).media_worker_count == 3


def test_secrets_never_print() -> None:
    s = load_settings(
        {
            "TONGBAN_SMS_PROVIDER": "aliyun",
            "TONGBAN_ALIYUN_ACCESS_KEY_ID": "LTAI-id",
            "TONGBAN_ALIYUN_ACCESS_KEY_SECRET": "very-secret-value",
            "TONGBAN_ALIYUN_SIGN_NAME": "通办",
            "TONGBAN_ALIYUN_TEMPLATE_REMINDER": "SMS_1",
            "TONGBAN_ALIYUN_TEMPLATE_ESCALATION": "SMS_2",
        }
    )
    assert "very-secret-value" not in repr(s) and "very-secret-value" not in str(s.describe())
    assert s.aliyun_access_key_secret is not None
    assert s.aliyun_access_key_secret.reveal() == "very-secret-value"
