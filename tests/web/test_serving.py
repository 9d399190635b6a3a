"""The serving worker's set-up (no server started: gunicorn's objects only)."""


def test_the_worker_reads_gunicorn_settings_as_plain_attributes():
    from gunicorn.config import Config

    from ocean.web import serving

    cfg = Config()
    cfg.set("keepalive", 7)
    before = {name: getattr(cfg, name) for name in cfg.settings if not hasattr(Config, name)}
    serving.freeze_settings(cfg)
    assert {name: cfg.__dict__[name] for name in before} == before  # same values, no __getattr__
    assert "address" not in cfg.__dict__ and cfg.keepalive == 7  # class properties left alone
