# Rollout and failure drills: real release binaries, real PostgreSQL, HAProxy
# as the Service/Ingress, settings taken from the rendered chart.

TEST_TARGETS += test-drills

DRILLS_PY = "$$(scripts/tools/ensure-venv.sh)/python"
DRILLS_ENV = USERAPI_BIN_OLD=.build/drills/userapi-old USERAPI_BIN_NEW=.build/drills/userapi-new

.PHONY: drills test-drills drill-binaries drill-tools

drill-tools:
	scripts/tools/ensure-apt.sh haproxy wrk postgresql

drill-binaries: drill-tools
	VERSION=$(VERSION) IMAGE=$(IMAGE) TAG=$(TAG) scripts/drills/binaries.sh

drills: drill-binaries ## All seven drills (rolling update, crash, database restart and freeze, SQLite recreate, overload, feed watchers across a rollout) with a result table
	$(DRILLS_ENV) scripts/with-postgres.sh $(DRILLS_PY) scripts/drills/drills.py $(DRILLS_ARGS)

test-drills: drill-binaries ## Short drills for CI: rolling update under load, database restart and freeze, feed watchers across a rollout
	$(DRILLS_ENV) $(PYTEST) -m drills
