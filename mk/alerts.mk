# Alert rules: helm/django-celery/files/alerts.yml, the one file the chart (PrometheusRule), Compose and
# Ansible load (docs/observability.md), unit-tested with promtool. No Prometheus server runs.
ALERT_RULES := helm/django-celery/files/alerts.yml

.PHONY: promtool test-alerts

promtool: ## Fetch promtool from Debian's prometheus package into .tools/bin (extracted, not installed)
	@scripts/setup/ensure-promtool.sh

test-alerts: promtool ## promtool check + test the alert rules: each alert fires and stays quiet (tests/alerts; seconds)
	promtool check rules $(ALERT_RULES) tests/alerts/overrides.example.yml
	promtool test rules tests/alerts/alerts.test.yml tests/alerts/alerts-day.test.yml
