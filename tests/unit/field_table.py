"""Every property of the flow language: the test that exercises it (file::function), or REFUSED (validation
says "not supported yet" when it is set); what has no behaviour yet is SILENT_GAPS, in test_every_field.py,
which checks both. Inherited task properties (retry, timeout, ...) name the test of the shared mechanism
that runs them for every task of that kind; "Model.field" uses the pydantic field name."""

from __future__ import annotations

REFUSED = "REFUSED"
B = "tests/unit/test_every_field_behaviour.py::"
FF = "tests/unit/test_flow_features.py::"
KC = "tests/unit/test_kestra_core.py::"
CT = "tests/unit/test_core_tasks.py::"
IN = "tests/unit/test_inputs.py::"
ST = "tests/unit/test_storage_tasks.py::"
SC = "tests/runners/test_scripts.py::"
SCH = "tests/unit/test_schedule_triggers.py::"
SCC = "tests/unit/test_schedule_conditions.py::"
LU = "tests/unit/test_loop_until.py::"
SLA = "tests/unit/test_sla.py::"
WDC = "tests/unit/test_wd_cache.py::"
FEI = "tests/unit/test_for_each_item.py::"
RNE = ("tests/unit/test_retry_new_execution.py::"
       "test_the_flow_runs_again_as_a_new_execution_with_its_inputs_until_it_succeeds")
FT = "tests/unit/test_flow_triggers.py::"
DK = "tests/runners/test_docker.py::"
AW = "tests/runners/test_aws_batch.py::"
GC = "tests/runners/test_gcp_batch.py::"
AO = "tests/runners/test_aws_batch_options.py::"
GO = "tests/runners/test_gcp_batch_options.py::"
HT = "tests/unit/test_http_tasks.py::"
STEP = "tests/unit/test_step.py::"
LD = "tests/unit/test_loader.py::"
WG = "tests/integration/test_worker_groups.py::"
OFF = B + "test_every_task_type_disabled_is_never_run"
SKIP = B + "test_every_task_type_with_a_false_run_if_ends_skipped_without_running"
DOCS = B + "test_flow_variables_labels_as_a_list_and_descriptions"
MAY_FAIL = FF + "test_allow_failure_ends_in_warning_and_the_flow_goes_on"
RETRY_OPTIONS = B + "test_warning_on_retry_max_attempts_the_flow_retry_and_allow_warning"
MAY_WARN = B + "test_warning_on_retry_max_attempts_the_flow_retry_and_allow_warning"
RETRY_DURATIONS = B + "test_max_duration_bounds_the_retries_and_random_waits_between_its_bounds"
RETRY = FF + "test_retry_until_success"
RETRY_EXP = FF + "test_retry_exponential_counts_attempts_and_backs_off"
TIMEOUT = FF + "test_timeout_fails_a_long_task_quickly"
SCRIPT_TIMEOUT = SC + "test_timeout_fails_the_task_quickly"
GROUP = FF + "test_templated_worker_group_is_rendered_and_served_embedded"
LOGS = B + "test_log_levels_and_the_task_log_level_that_filters_them"
FLOWABLE_ERRORS = B + "test_every_flowable_runs_its_errors_then_finally_and_may_be_allowed_to_fail"
FLOWABLE_WARN = B + "test_every_flowable_allowed_to_warn_ends_success"
FLOWABLE_RETRY = B + "test_a_flowable_retry_runs_its_failed_children_again"
SUBFLOW_OPTIONS = B + "test_subflow_wait_transmit_failed_labels_revision_and_retry"
SUBFLOW = FF + "test_subflow_waits_and_exposes_the_child_outputs"
KV_OPTIONS = B + "test_kv_namespace_overwrite_ttl_and_delete"
KV = FF + "test_kv_set_then_get_and_kv_function"
FAN_OUTS = B + "test_each_sequential_each_parallel_and_dag_concurrency"
SCRIPT_TYPES = B + "test_script_types_interpreter_and_fail_fast_off"
PY_SCRIPT = SC + "test_python_script_outputs_files_paths_and_env"
SH_COMMANDS = SC + "test_shell_commands_outputs_files_paths_before_commands_and_env"
WATCHERS = B + "test_flow_trigger_states_conditions_and_disabled_triggers_and_flows"
WATCHER = FT + "test_a_watcher_starts_when_its_upstream_succeeds_with_inputs_from_its_outputs"
CONDITIONS = FT + "test_status_and_namespace_conditions_filter_ends"
SCHEDULE = SCH + "test_a_deployed_schedule_fires_each_date_once_with_trigger_variables"
SCHEDULE_ZONE = SCH + "test_next_date_follows_the_cron_in_its_time_zone"
MISSED = SCH + "test_missed_dates_follow_recover_missed_schedules"
LATE = SCH + "test_late_maximum_delay_drops_dates_too_old_to_run"
SCHEDULE_OFF = SCH + "test_a_changed_cron_starts_afresh_and_a_disabled_trigger_lets_dates_pass"
ON_DATES = SCH + "test_schedule_on_dates_fires_each_date_once_then_has_none_left"
DO = "tests/runners/test_docker_options.py::"
STS_OPTIONS = AO + "test_sts_options_reach_assume_role_through_the_sts_endpoint"
AWS_JOB = AO + "test_roles_and_resources_are_the_job_definitions"
DOCKER_SHAPE = DO + "test_cpu_memory_shm_network_user_and_hosts_shape_the_container"
DOCKER_DEVICES = DO + "test_device_requests_reach_the_engine_and_a_missing_driver_fails_leaving_nothing"
WORKING_DIRECTORY = FF + "test_working_directory_with_local_files"
WD_FILES = KC + "test_a_working_directory_starts_with_its_input_and_namespace_files_and_keeps_its_output_files"
STORAGE_WRITE = ST + "test_write_stores_the_content_and_size_counts_its_bytes"
SPLIT_ROWS = ST + "test_split_by_rows"
REVERSE = ST + "test_reverse_puts_the_last_line_first_and_keeps_the_extension"
CONCAT = ST + "test_concat_a_list_with_a_separator_after_each_file"
STORAGE_DELETE = ST + "test_delete_removes_the_file_and_says_whether_it_existed"
PURGE = ST + "test_purge_deletes_the_files_of_this_execution_only"
DEFAULTS = LD + "test_task_defaults_are_applied"
OUTPUTS = FF + "test_flow_outputs_take_their_declared_type"
CONCURRENCY = CT + "test_behavior_cancel_cancels_the_new_execution_and_a_limit_of_two_admits_two"
LOG = FF + "test_secret_from_env_is_masked_in_logs"
EXIT = FF + "test_exit_ends_the_execution_in_its_state"
ASSERT = CT + "test_assert_fails_counting_the_false_conditions_and_adds_the_error_message"
KV_TYPES = CT + "test_kv_type_stores_the_rendered_string_as_the_named_type"
GET_KEYS = CT + "test_get_keys_lists_live_keys_by_prefix_and_namespace"
PARALLEL = STEP + "test_parallel_starts_up_to_its_concurrency_limit"
IF = STEP + "test_if_takes_the_branch_its_condition_renders_to"
FOR_EACH = FF + "test_foreach_with_concurrency_limit_runs_every_value"
DAG = FF + "test_dag_starts_a_task_only_after_its_dependencies_ended"
II = "tests/unit/test_input_interface.py::"
INPUT_NAME = II + "test_a_missing_input_that_is_on_is_named_with_its_display_name"
INPUT_ON = II + "test_an_input_whose_condition_is_false_is_off_not_required_and_absent"
PREFILL = II + "test_prefill_suggests_but_never_supplies_a_value"
PAUSE_BEHAVIOR = KC + "test_a_pause_that_reaches_its_duration_ends_as_its_behavior_says"

TABLE: dict[str, str] = {
    "Flow.disabled": "tests/unit/test_core_tasks.py::test_a_disabled_flow_is_not_executed_by_hand_or_by_a_subflow",
    "Flow.id": SUBFLOW, "Flow.namespace": SUBFLOW, "Flow.description": DOCS,
    "Flow.labels": FF + "test_labels_task_sets_execution_labels", "Flow.inputs": FF + "test_flow_outputs_are_rendered",
    "Flow.variables": DOCS,
    "Flow.tasks": STEP + "test_a_sequential_flow_starts_one_task_at_a_time_and_ends_with_its_outputs",
    "Flow.errors": STEP + "test_a_failure_runs_errors_then_finally_and_fails_the_execution",
    "Flow.finally_": STEP + "test_a_failure_runs_errors_then_finally_and_fails_the_execution",
    "Flow.afterExecution":
        "tests/unit/test_after_execution.py::test_after_a_failure_they_see_failed_and_the_execution_stays_failed",
    "Flow.outputs": OUTPUTS, "Flow.triggers": SCHEDULE, "Flow.taskDefaults": DEFAULTS,
    "Flow.pluginDefaults": LD + "test_forced_plugin_defaults_override_the_task",
    "Flow.workerGroup": WG + "test_namespace_default_is_inherited_and_overridden", "Flow.retry": RETRY_OPTIONS,
    "Flow.concurrency": CT + "test_past_the_concurrency_limit_behavior_fail_fails_the_new_execution_at_once",
    "Flow.sla": SLA + "test_max_duration_cancels_a_long_execution_and_labels_it",
    "Flow.deleted": REFUSED, "Log.id": LOG, "Log.type": LOG, "Log.description": DOCS,
    "Log.disabled": OFF, "Log.allowFailure": MAY_FAIL, "Log.allowWarning": MAY_WARN, "Log.retry": RETRY,
    "Log.timeout": TIMEOUT, "Log.workerGroup": GROUP, "Log.logLevel": LOGS, "Log.logToFile": REFUSED,
    "Log.runIf": SKIP, "Log.message": LOG, "Log.level": LOGS, "Echo.id": LOGS, "Echo.type": LOGS,
    "Echo.description": DOCS, "Echo.disabled": OFF, "Echo.allowFailure": MAY_FAIL, "Echo.allowWarning": MAY_WARN,
    "Echo.retry": RETRY, "Echo.timeout": TIMEOUT, "Echo.workerGroup": GROUP, "Echo.logLevel": LOGS,
    "Echo.logToFile": REFUSED, "Echo.runIf": SKIP, "Echo.format": LOGS, "Echo.level": LOGS, "Return.id": OUTPUTS,
    "Return.type": OUTPUTS, "Return.description": DOCS, "Return.disabled": OFF, "Return.allowFailure": MAY_FAIL,
    "Return.allowWarning": MAY_WARN, "Return.retry": RETRY, "Return.timeout": TIMEOUT, "Return.workerGroup": GROUP,
    "Return.logLevel": LOGS, "Return.logToFile": REFUSED, "Return.runIf": SKIP, "Return.format": OUTPUTS,
    "OutputValues.id": KV_TYPES, "OutputValues.type": KV_TYPES, "OutputValues.description": DOCS,
    "OutputValues.disabled": OFF, "OutputValues.allowFailure": MAY_FAIL, "OutputValues.allowWarning": MAY_WARN,
    "OutputValues.retry": RETRY, "OutputValues.timeout": TIMEOUT, "OutputValues.workerGroup": GROUP,
    "OutputValues.logLevel": LOGS, "OutputValues.logToFile": REFUSED, "OutputValues.runIf": SKIP,
    "OutputValues.values": KV_TYPES, "Sleep.id": FAN_OUTS, "Sleep.type": FAN_OUTS, "Sleep.description": DOCS,
    "Sleep.disabled": OFF, "Sleep.allowFailure": MAY_FAIL, "Sleep.allowWarning": MAY_WARN, "Sleep.retry": RETRY,
    "Sleep.timeout": TIMEOUT, "Sleep.workerGroup": GROUP, "Sleep.logLevel": LOGS, "Sleep.logToFile": REFUSED,
    "Sleep.runIf": SKIP, "Sleep.duration": FAN_OUTS, "Fail.id": MAY_FAIL, "Fail.type": MAY_FAIL,
    "Fail.description": DOCS, "Fail.disabled": OFF, "Fail.allowFailure": MAY_FAIL, "Fail.allowWarning": MAY_WARN,
    "Fail.retry": RETRY, "Fail.timeout": TIMEOUT, "Fail.workerGroup": GROUP, "Fail.logLevel": LOGS,
    "Fail.logToFile": REFUSED, "Fail.runIf": SKIP, "Fail.condition": RETRY, "Fail.errorMessage": RETRY_EXP,
    "Exit.id": EXIT, "Exit.type": EXIT, "Exit.description": DOCS, "Exit.disabled": OFF, "Exit.allowFailure": MAY_FAIL,
    "Exit.allowWarning": MAY_WARN, "Exit.retry": RETRY, "Exit.timeout": TIMEOUT, "Exit.workerGroup": GROUP,
    "Exit.logLevel": LOGS, "Exit.logToFile": REFUSED, "Exit.runIf": SKIP, "Exit.state": EXIT,
    "Exit.condition": FF + "test_exit_with_a_false_condition_lets_the_flow_go_on",
    "Labels.id": FF + "test_labels_task_sets_execution_labels",
    "Labels.type": FF + "test_labels_task_sets_execution_labels", "Labels.description": DOCS, "Labels.disabled": OFF,
    "Labels.allowFailure": MAY_FAIL, "Labels.allowWarning": MAY_WARN, "Labels.retry": RETRY, "Labels.timeout": TIMEOUT,
    "Labels.workerGroup": GROUP, "Labels.logLevel": LOGS, "Labels.logToFile": REFUSED, "Labels.runIf": SKIP,
    "Labels.labels": FF + "test_labels_task_sets_execution_labels", "Assert.id": ASSERT, "Assert.type": ASSERT,
    "Assert.description": DOCS, "Assert.disabled": OFF, "Assert.allowFailure": MAY_FAIL,
    "Assert.allowWarning": MAY_WARN, "Assert.retry": RETRY, "Assert.timeout": TIMEOUT, "Assert.workerGroup": GROUP,
    "Assert.logLevel": LOGS, "Assert.logToFile": REFUSED, "Assert.runIf": SKIP, "Assert.conditions": ASSERT,
    "Assert.errorMessage": ASSERT, "KVSet.id": KV, "KVSet.type": KV, "KVSet.description": DOCS, "KVSet.disabled": OFF,
    "KVSet.allowFailure": MAY_FAIL, "KVSet.allowWarning": MAY_WARN, "KVSet.retry": RETRY, "KVSet.timeout": TIMEOUT,
    "KVSet.workerGroup": GROUP, "KVSet.logLevel": LOGS, "KVSet.logToFile": REFUSED, "KVSet.runIf": SKIP,
    "KVSet.key": KV, "KVSet.value": KV, "KVSet.namespace": KV_OPTIONS, "KVSet.overwrite": KV_OPTIONS,
    "KVSet.ttl": KV_OPTIONS, "KVSet.kvType": KV_TYPES, "KVGet.id": KV, "KVGet.type": KV, "KVGet.description": DOCS,
    "KVGet.disabled": OFF, "KVGet.allowFailure": MAY_FAIL, "KVGet.allowWarning": MAY_WARN, "KVGet.retry": RETRY,
    "KVGet.timeout": TIMEOUT, "KVGet.workerGroup": GROUP, "KVGet.logLevel": LOGS, "KVGet.logToFile": REFUSED,
    "KVGet.runIf": SKIP, "KVGet.key": KV, "KVGet.namespace": KV_OPTIONS,
    "KVGet.errorOnMissing": FF + "test_kv_get_error_on_missing_fails_the_task", "KVGetKeys.id": GET_KEYS,
    "KVGetKeys.type": GET_KEYS, "KVGetKeys.description": DOCS, "KVGetKeys.disabled": OFF,
    "KVGetKeys.allowFailure": MAY_FAIL, "KVGetKeys.allowWarning": MAY_WARN, "KVGetKeys.retry": RETRY,
    "KVGetKeys.timeout": TIMEOUT, "KVGetKeys.workerGroup": GROUP, "KVGetKeys.logLevel": LOGS,
    "KVGetKeys.logToFile": REFUSED, "KVGetKeys.runIf": SKIP, "KVGetKeys.prefix": GET_KEYS,
    "KVGetKeys.namespace": GET_KEYS, "KVDelete.id": KV_OPTIONS, "KVDelete.type": KV_OPTIONS,
    "KVDelete.description": DOCS, "KVDelete.disabled": OFF, "KVDelete.allowFailure": MAY_FAIL,
    "KVDelete.allowWarning": MAY_WARN, "KVDelete.retry": RETRY, "KVDelete.timeout": TIMEOUT,
    "KVDelete.workerGroup": GROUP, "KVDelete.logLevel": LOGS, "KVDelete.logToFile": REFUSED, "KVDelete.runIf": SKIP,
    "KVDelete.key": KV_OPTIONS, "KVDelete.namespace": KV_OPTIONS, "KVDelete.errorOnMissing": KV_OPTIONS,
    "LocalFiles.id": WORKING_DIRECTORY, "LocalFiles.type": WORKING_DIRECTORY, "LocalFiles.description": DOCS,
    "LocalFiles.disabled": OFF, "LocalFiles.allowFailure": MAY_FAIL, "LocalFiles.allowWarning": MAY_WARN,
    "LocalFiles.retry": RETRY, "LocalFiles.timeout": TIMEOUT, "LocalFiles.workerGroup": GROUP,
    "LocalFiles.logLevel": LOGS, "LocalFiles.logToFile": REFUSED, "LocalFiles.runIf": SKIP,
    "LocalFiles.inputs": WORKING_DIRECTORY, "LocalFiles.outputs": WORKING_DIRECTORY,
    "Sequential.id": FF + "test_allow_failure_on_a_flowable",
    "Sequential.type": FF + "test_allow_failure_on_a_flowable", "Sequential.description": DOCS,
    "Sequential.disabled": OFF, "Sequential.allowFailure": FLOWABLE_ERRORS, "Sequential.allowWarning": FLOWABLE_WARN,
    "Sequential.retry": FLOWABLE_RETRY, "Sequential.logToFile": REFUSED, "Sequential.runIf": SKIP,
    "Sequential.errors": FLOWABLE_ERRORS, "Sequential.finally_": FLOWABLE_ERRORS,
    "Sequential.tasks": FF + "test_allow_failure_on_a_flowable", "AllowFailure.id": FLOWABLE_ERRORS,
    "AllowFailure.type": FLOWABLE_ERRORS, "AllowFailure.description": DOCS, "AllowFailure.disabled": OFF,
    "AllowFailure.allowFailure": FLOWABLE_ERRORS, "AllowFailure.allowWarning": FLOWABLE_WARN,
    "AllowFailure.retry": FLOWABLE_RETRY, "AllowFailure.logToFile": REFUSED, "AllowFailure.runIf": SKIP,
    "AllowFailure.errors": FLOWABLE_ERRORS, "AllowFailure.finally_": FLOWABLE_ERRORS,
    "AllowFailure.tasks": FLOWABLE_ERRORS, "Parallel.id": PARALLEL, "Parallel.type": PARALLEL,
    "Parallel.description": DOCS, "Parallel.disabled": OFF, "Parallel.allowFailure": FLOWABLE_ERRORS,
    "Parallel.allowWarning": FLOWABLE_WARN, "Parallel.retry": FLOWABLE_RETRY, "Parallel.logToFile": REFUSED,
    "Parallel.runIf": SKIP, "Parallel.errors": FLOWABLE_ERRORS, "Parallel.finally_": FLOWABLE_ERRORS,
    "Parallel.tasks": PARALLEL, "Parallel.concurrent": PARALLEL, "If.id": IF, "If.type": IF, "If.description": DOCS,
    "If.disabled": OFF, "If.allowFailure": FLOWABLE_ERRORS, "If.allowWarning": FLOWABLE_WARN,
    "If.retry": FLOWABLE_RETRY, "If.logToFile": REFUSED, "If.runIf": SKIP, "If.errors": FLOWABLE_ERRORS,
    "If.finally_": FLOWABLE_ERRORS, "If.condition": IF, "If.then": IF, "If.else_": IF, "Switch.id": FLOWABLE_ERRORS,
    "Switch.type": FLOWABLE_ERRORS, "Switch.description": DOCS, "Switch.disabled": OFF,
    "Switch.allowFailure": FLOWABLE_ERRORS, "Switch.allowWarning": FLOWABLE_WARN, "Switch.retry": FLOWABLE_RETRY,
    "Switch.logToFile": REFUSED, "Switch.runIf": SKIP, "Switch.errors": FLOWABLE_ERRORS,
    "Switch.finally_": FLOWABLE_ERRORS, "Switch.value": FLOWABLE_ERRORS, "Switch.cases": FLOWABLE_ERRORS,
    "Switch.defaults": "tests/unit/test_secrets_at_rest.py::test_flowables_store_no_secret_input",
    "ForEach.id": FOR_EACH, "ForEach.type": FOR_EACH, "ForEach.description": DOCS, "ForEach.disabled": OFF,
    "ForEach.allowFailure": FLOWABLE_ERRORS, "ForEach.allowWarning": FLOWABLE_WARN, "ForEach.retry": FLOWABLE_RETRY,
    "ForEach.logToFile": REFUSED, "ForEach.runIf": SKIP, "ForEach.errors": FLOWABLE_ERRORS,
    "ForEach.finally_": FLOWABLE_ERRORS, "ForEach.values": FOR_EACH, "ForEach.concurrencyLimit": FOR_EACH,
    "ForEach.tasks": FOR_EACH, "EachSequential.id": FAN_OUTS, "EachSequential.type": FAN_OUTS,
    "EachSequential.description": DOCS, "EachSequential.disabled": OFF, "EachSequential.allowFailure": FLOWABLE_ERRORS,
    "EachSequential.allowWarning": FLOWABLE_WARN, "EachSequential.retry": FLOWABLE_RETRY,
    "EachSequential.logToFile": REFUSED, "EachSequential.runIf": SKIP, "EachSequential.errors": FLOWABLE_ERRORS,
    "EachSequential.finally_": FLOWABLE_ERRORS, "EachSequential.value": FAN_OUTS, "EachSequential.tasks": FAN_OUTS,
    "EachParallel.id": FAN_OUTS, "EachParallel.type": FAN_OUTS, "EachParallel.description": DOCS,
    "EachParallel.disabled": OFF, "EachParallel.allowFailure": FLOWABLE_ERRORS,
    "EachParallel.allowWarning": FLOWABLE_WARN, "EachParallel.retry": FLOWABLE_RETRY,
    "EachParallel.logToFile": REFUSED, "EachParallel.runIf": SKIP, "EachParallel.errors": FLOWABLE_ERRORS,
    "EachParallel.finally_": FLOWABLE_ERRORS, "EachParallel.value": FAN_OUTS, "EachParallel.concurrent": FAN_OUTS,
    "EachParallel.tasks": FAN_OUTS, "Dag.id": DAG, "Dag.type": DAG, "Dag.description": DOCS, "Dag.disabled": OFF,
    "Dag.allowFailure": FLOWABLE_ERRORS, "Dag.allowWarning": FLOWABLE_WARN, "Dag.retry": FLOWABLE_RETRY,
    "Dag.logToFile": REFUSED, "Dag.runIf": SKIP, "Dag.errors": FLOWABLE_ERRORS, "Dag.finally_": FLOWABLE_ERRORS,
    "Dag.tasks": DAG, "Dag.concurrent": FAN_OUTS,
    "LoopUntil.id": LU + "test_it_loops_until_the_condition_holds_with_a_run_per_iteration",
    "LoopUntil.type": LU + "test_a_condition_true_at_once_runs_one_iteration_and_wait_for_is_the_same_task",
    "LoopUntil.condition": LU + "test_it_loops_until_the_condition_holds_with_a_run_per_iteration",
    "LoopUntil.tasks": LU + "test_a_nested_loop_starts_afresh_in_each_outer_iteration",
    "LoopUntil.failOnMaxReached": LU + "test_max_iterations_stops_the_loop_and_fails_it_when_asked",
    "LoopUntil.checkFrequency": LU + "test_max_duration_stops_the_loop",
    "CheckFrequency.maxIterations": LU + "test_max_iterations_stops_the_loop_and_fails_it_when_asked",
    "CheckFrequency.maxDuration": LU + "test_max_duration_stops_the_loop",
    "CheckFrequency.interval": LU + "test_it_loops_until_the_condition_holds_with_a_run_per_iteration",
    "LoopUntil.description": DOCS, "LoopUntil.disabled": OFF, "LoopUntil.allowFailure": FLOWABLE_ERRORS,
    "LoopUntil.allowWarning": FLOWABLE_WARN, "LoopUntil.retry": FLOWABLE_RETRY, "LoopUntil.logToFile": REFUSED,
    "LoopUntil.runIf": SKIP, "LoopUntil.errors": FLOWABLE_ERRORS, "LoopUntil.finally_": FLOWABLE_ERRORS,
    "Pause.id": FF + "test_pause_without_delay_waits_for_resume",
    "Pause.type": FF + "test_pause_without_delay_waits_for_resume", "Pause.description": DOCS, "Pause.disabled": OFF,
    "Pause.timeout": KC + "test_a_pause_with_a_timeout_and_no_duration_fails_when_it_passes",
    "Pause.logToFile": REFUSED, "Pause.runIf": SKIP, "Pause.delay": FF + "test_pause_with_delay_resumes_by_itself",
    "Pause.pauseDuration": PAUSE_BEHAVIOR, "Pause.behavior": PAUSE_BEHAVIOR,
    "Pause.onResume": KC + "test_on_resume_inputs_are_validated_and_become_the_pause_outputs", "Subflow.id": SUBFLOW,
    "Subflow.type": SUBFLOW, "Subflow.description": DOCS, "Subflow.disabled": OFF,
    "Subflow.allowFailure": KC + "test_a_subflow_allowed_to_fail_ends_warning_and_the_flow_goes_on",
    "Subflow.allowWarning": SUBFLOW_OPTIONS, "Subflow.retry": SUBFLOW_OPTIONS, "Subflow.logToFile": REFUSED,
    "Subflow.runIf": SKIP, "Subflow.namespace": SUBFLOW, "Subflow.flowId": SUBFLOW,
    "Subflow.revision": SUBFLOW_OPTIONS, "Subflow.inputs": SUBFLOW, "Subflow.labels": SUBFLOW_OPTIONS,
    "Subflow.wait": SUBFLOW_OPTIONS, "Subflow.transmitFailed": SUBFLOW_OPTIONS,
    "Subflow.inheritLabels": SUBFLOW_OPTIONS,
    "Subflow.outputs": FF + "test_subflow_task_outputs_are_rendered_against_the_child",
    "Subflow.scheduleDate": REFUSED, "WorkingDirectory.id": WORKING_DIRECTORY,
    "WorkingDirectory.type": WORKING_DIRECTORY, "WorkingDirectory.description": DOCS, "WorkingDirectory.disabled": OFF,
    "WorkingDirectory.allowFailure": FLOWABLE_ERRORS, "WorkingDirectory.allowWarning": FLOWABLE_WARN,
    "WorkingDirectory.retry": FLOWABLE_RETRY, "WorkingDirectory.workerGroup": GROUP, "WorkingDirectory.logLevel": LOGS,
    "WorkingDirectory.logToFile": REFUSED, "WorkingDirectory.runIf": SKIP, "WorkingDirectory.errors": FLOWABLE_ERRORS,
    "WorkingDirectory.finally_": FLOWABLE_ERRORS, "WorkingDirectory.tasks": WORKING_DIRECTORY,
    "WorkingDirectory.inputFiles": WD_FILES, "WorkingDirectory.outputFiles": WD_FILES,
    "WorkingDirectory.namespaceFiles": WD_FILES,
    "WorkingDirectory.cache": WDC + "test_the_next_execution_finds_the_kept_files_of_its_own_loop_value",
    "PythonCommands.id": SCRIPT_TYPES,
    "PythonCommands.type": SCRIPT_TYPES, "PythonCommands.description": DOCS, "PythonCommands.disabled": OFF,
    "PythonCommands.allowFailure": MAY_FAIL, "PythonCommands.allowWarning": MAY_WARN, "PythonCommands.retry": RETRY,
    "PythonCommands.timeout": SCRIPT_TIMEOUT, "PythonCommands.workerGroup": GROUP, "PythonCommands.logLevel": LOGS,
    "PythonCommands.logToFile": REFUSED, "PythonCommands.runIf": SKIP, "PythonCommands.beforeCommands": SH_COMMANDS,
    "PythonCommands.interpreter": SCRIPT_TYPES, "PythonCommands.env": SC + "test_env_numbers_and_booleans_are_strings",
    "PythonCommands.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "PythonCommands.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "PythonCommands.namespaceFiles": SC + "test_namespace_files_include_exclude",
    "PythonCommands.outputFiles": PY_SCRIPT, "PythonCommands.warningOnStdErr": SC + "test_warning_on_stderr",
    "PythonCommands.failFast": SCRIPT_TYPES, "PythonCommands.taskRunner": SC + "test_spec_handed_to_the_runner",
    "PythonCommands.commands": SCRIPT_TYPES, "PythonScript.id": PY_SCRIPT, "PythonScript.type": PY_SCRIPT,
    "PythonScript.description": DOCS, "PythonScript.disabled": OFF, "PythonScript.allowFailure": MAY_FAIL,
    "PythonScript.allowWarning": MAY_WARN, "PythonScript.retry": RETRY, "PythonScript.timeout": SCRIPT_TIMEOUT,
    "PythonScript.workerGroup": GROUP, "PythonScript.logLevel": LOGS, "PythonScript.logToFile": REFUSED,
    "PythonScript.runIf": SKIP, "PythonScript.beforeCommands": SH_COMMANDS, "PythonScript.interpreter": SCRIPT_TYPES,
    "PythonScript.env": SC + "test_env_numbers_and_booleans_are_strings",
    "PythonScript.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "PythonScript.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "PythonScript.namespaceFiles": SC + "test_namespace_files_include_exclude", "PythonScript.outputFiles": PY_SCRIPT,
    "PythonScript.warningOnStdErr": SC + "test_warning_on_stderr", "PythonScript.failFast": SCRIPT_TYPES,
    "PythonScript.taskRunner": SC + "test_spec_handed_to_the_runner", "PythonScript.script": PY_SCRIPT,
    "ShellCommands.id": SH_COMMANDS, "ShellCommands.type": SH_COMMANDS, "ShellCommands.description": DOCS,
    "ShellCommands.disabled": OFF, "ShellCommands.allowFailure": MAY_FAIL, "ShellCommands.allowWarning": MAY_WARN,
    "ShellCommands.retry": RETRY, "ShellCommands.timeout": SCRIPT_TIMEOUT, "ShellCommands.workerGroup": GROUP,
    "ShellCommands.logLevel": LOGS, "ShellCommands.logToFile": REFUSED, "ShellCommands.runIf": SKIP,
    "ShellCommands.beforeCommands": SH_COMMANDS, "ShellCommands.interpreter": SCRIPT_TYPES,
    "ShellCommands.env": SC + "test_env_numbers_and_booleans_are_strings",
    "ShellCommands.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "ShellCommands.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "ShellCommands.namespaceFiles": SC + "test_namespace_files_include_exclude",
    "ShellCommands.outputFiles": PY_SCRIPT, "ShellCommands.warningOnStdErr": SC + "test_warning_on_stderr",
    "ShellCommands.failFast": SCRIPT_TYPES, "ShellCommands.taskRunner": SC + "test_spec_handed_to_the_runner",
    "ShellCommands.commands": SH_COMMANDS, "ShellScript.id": SCRIPT_TYPES, "ShellScript.type": SCRIPT_TYPES,
    "ShellScript.description": DOCS, "ShellScript.disabled": OFF, "ShellScript.allowFailure": MAY_FAIL,
    "ShellScript.allowWarning": MAY_WARN, "ShellScript.retry": RETRY, "ShellScript.timeout": SCRIPT_TIMEOUT,
    "ShellScript.workerGroup": GROUP, "ShellScript.logLevel": LOGS, "ShellScript.logToFile": REFUSED,
    "ShellScript.runIf": SKIP, "ShellScript.beforeCommands": SH_COMMANDS, "ShellScript.interpreter": SCRIPT_TYPES,
    "ShellScript.env": SC + "test_env_numbers_and_booleans_are_strings",
    "ShellScript.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "ShellScript.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "ShellScript.namespaceFiles": SC + "test_namespace_files_include_exclude", "ShellScript.outputFiles": PY_SCRIPT,
    "ShellScript.warningOnStdErr": SC + "test_warning_on_stderr", "ShellScript.failFast": SCRIPT_TYPES,
    "ShellScript.taskRunner": SC + "test_spec_handed_to_the_runner", "ShellScript.script": SCRIPT_TYPES,
    "NodeCommands.id": SCRIPT_TYPES, "NodeCommands.type": SCRIPT_TYPES, "NodeCommands.description": DOCS,
    "NodeCommands.disabled": OFF, "NodeCommands.allowFailure": MAY_FAIL, "NodeCommands.allowWarning": MAY_WARN,
    "NodeCommands.retry": RETRY, "NodeCommands.timeout": SCRIPT_TIMEOUT, "NodeCommands.workerGroup": GROUP,
    "NodeCommands.logLevel": LOGS, "NodeCommands.logToFile": REFUSED, "NodeCommands.runIf": SKIP,
    "NodeCommands.beforeCommands": SH_COMMANDS, "NodeCommands.interpreter": SCRIPT_TYPES,
    "NodeCommands.env": SC + "test_env_numbers_and_booleans_are_strings",
    "NodeCommands.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "NodeCommands.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "NodeCommands.namespaceFiles": SC + "test_namespace_files_include_exclude", "NodeCommands.outputFiles": PY_SCRIPT,
    "NodeCommands.warningOnStdErr": SC + "test_warning_on_stderr", "NodeCommands.failFast": SCRIPT_TYPES,
    "NodeCommands.taskRunner": SC + "test_spec_handed_to_the_runner", "NodeCommands.commands": SCRIPT_TYPES,
    "NodeScript.id": SCRIPT_TYPES, "NodeScript.type": SCRIPT_TYPES, "NodeScript.description": DOCS,
    "NodeScript.disabled": OFF, "NodeScript.allowFailure": MAY_FAIL, "NodeScript.allowWarning": MAY_WARN,
    "NodeScript.retry": RETRY, "NodeScript.timeout": SCRIPT_TIMEOUT, "NodeScript.workerGroup": GROUP,
    "NodeScript.logLevel": LOGS, "NodeScript.logToFile": REFUSED, "NodeScript.runIf": SKIP,
    "NodeScript.beforeCommands": SH_COMMANDS, "NodeScript.interpreter": SCRIPT_TYPES,
    "NodeScript.env": SC + "test_env_numbers_and_booleans_are_strings",
    "NodeScript.containerImage": DK + "test_script_task_runs_in_the_container_with_files_both_ways",
    "NodeScript.inputFiles": SC + "test_input_files_inline_and_from_a_previous_task",
    "NodeScript.namespaceFiles": SC + "test_namespace_files_include_exclude", "NodeScript.outputFiles": PY_SCRIPT,
    "NodeScript.warningOnStdErr": SC + "test_warning_on_stderr", "NodeScript.failFast": SCRIPT_TYPES,
    "NodeScript.taskRunner": SC + "test_spec_handed_to_the_runner", "NodeScript.script": SCRIPT_TYPES,
    "Write.id": STORAGE_WRITE, "Write.type": STORAGE_WRITE, "Write.description": DOCS, "Write.disabled": OFF,
    "Write.allowFailure": MAY_FAIL, "Write.allowWarning": MAY_WARN, "Write.retry": RETRY, "Write.timeout": TIMEOUT,
    "Write.workerGroup": GROUP, "Write.logLevel": LOGS, "Write.logToFile": REFUSED, "Write.runIf": SKIP,
    "Write.content": STORAGE_WRITE, "Write.extension": ST + "test_write_without_an_extension_makes_a_tmp_file",
    "Size.id": STORAGE_WRITE, "Size.type": STORAGE_WRITE, "Size.description": DOCS, "Size.disabled": OFF,
    "Size.allowFailure": MAY_FAIL, "Size.allowWarning": MAY_WARN, "Size.retry": RETRY, "Size.timeout": TIMEOUT,
    "Size.workerGroup": GROUP, "Size.logLevel": LOGS, "Size.logToFile": REFUSED, "Size.runIf": SKIP,
    "Size.uri": STORAGE_WRITE, "Delete.id": STORAGE_DELETE, "Delete.type": STORAGE_DELETE, "Delete.description": DOCS,
    "Delete.disabled": OFF, "Delete.allowFailure": MAY_FAIL, "Delete.allowWarning": MAY_WARN, "Delete.retry": RETRY,
    "Delete.timeout": TIMEOUT, "Delete.workerGroup": GROUP, "Delete.logLevel": LOGS, "Delete.logToFile": REFUSED,
    "Delete.runIf": SKIP, "Delete.uri": STORAGE_DELETE,
    "Delete.errorOnMissing": ST + "test_delete_of_a_missing_file_fails_with_error_on_missing", "Concat.id": CONCAT,
    "Concat.type": CONCAT, "Concat.description": DOCS, "Concat.disabled": OFF, "Concat.allowFailure": MAY_FAIL,
    "Concat.allowWarning": MAY_WARN, "Concat.retry": RETRY, "Concat.timeout": TIMEOUT, "Concat.workerGroup": GROUP,
    "Concat.logLevel": LOGS, "Concat.logToFile": REFUSED, "Concat.runIf": SKIP, "Concat.files": CONCAT,
    "Concat.separator": CONCAT, "Concat.extension": CONCAT, "Split.id": SPLIT_ROWS, "Split.type": SPLIT_ROWS,
    "Split.description": DOCS, "Split.disabled": OFF, "Split.allowFailure": MAY_FAIL, "Split.allowWarning": MAY_WARN,
    "Split.retry": RETRY, "Split.timeout": TIMEOUT, "Split.workerGroup": GROUP, "Split.logLevel": LOGS,
    "Split.logToFile": REFUSED, "Split.runIf": SKIP, "Split.from_": SPLIT_ROWS,
    "Split.bytes": ST + "test_split_by_bytes_starts_a_file_once_the_last_reached_the_size",
    "Split.partitions": ST + "test_split_in_partitions_round_robin_dropping_the_empty_ones", "Split.rows": SPLIT_ROWS,
    "Split.regexPattern": ST + "test_split_by_regex_groups_lines_by_what_the_first_group_captures",
    "Split.separator": ST + "test_split_reads_crlf_lines_and_writes_them_with_the_separator", "Reverse.id": REVERSE,
    "Reverse.type": REVERSE, "Reverse.description": DOCS, "Reverse.disabled": OFF, "Reverse.allowFailure": MAY_FAIL,
    "Reverse.allowWarning": MAY_WARN, "Reverse.retry": RETRY, "Reverse.timeout": TIMEOUT, "Reverse.workerGroup": GROUP,
    "Reverse.logLevel": LOGS, "Reverse.logToFile": REFUSED, "Reverse.runIf": SKIP, "Reverse.from_": REVERSE,
    "Reverse.separator": REVERSE, "Reverse.charset": ST + "test_reverse_decodes_and_encodes_with_the_charset",
    "PurgeCurrentExecutionFiles.id": PURGE, "PurgeCurrentExecutionFiles.type": PURGE,
    "PurgeCurrentExecutionFiles.description": DOCS, "PurgeCurrentExecutionFiles.disabled": OFF,
    "PurgeCurrentExecutionFiles.allowFailure": MAY_FAIL, "PurgeCurrentExecutionFiles.allowWarning": MAY_WARN,
    "PurgeCurrentExecutionFiles.retry": RETRY, "PurgeCurrentExecutionFiles.timeout": TIMEOUT,
    "PurgeCurrentExecutionFiles.workerGroup": GROUP, "PurgeCurrentExecutionFiles.logLevel": LOGS,
    "PurgeCurrentExecutionFiles.logToFile": REFUSED, "PurgeCurrentExecutionFiles.runIf": SKIP,
    "PurgeCurrentExecutionFiles.includeChildExecutions": REFUSED, "PurgeCurrentExecutionFiles.includeStates": REFUSED,
    # -- HTTP tasks (workers/plugins/http.py)
    "HttpRequest.id": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.type": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.description": DOCS,
    "HttpRequest.disabled": OFF,
    "HttpRequest.allowFailure": MAY_FAIL,
    "HttpRequest.allowWarning": MAY_WARN,
    "HttpRequest.retry": RETRY,
    "HttpRequest.timeout": HT + "test_the_task_timeout_closes_the_connection_at_once",
    "HttpRequest.workerGroup": GROUP,
    "HttpRequest.logLevel": LOGS,
    "HttpRequest.logToFile": REFUSED,
    "HttpRequest.runIf": SKIP,
    "HttpRequest.uri": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.method": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.body": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.formData": HT + "test_form_data_is_url_encoded_or_multipart_with_storage_files",
    "HttpRequest.contentType": HT + "test_content_type_and_default_charset_shape_the_body",
    "HttpRequest.headers": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpRequest.options": HT + "test_a_failed_status_fails_the_task_unless_allow_failed",
    "HttpRequest.allowFailed": HT + "test_a_failed_status_fails_the_task_unless_allow_failed",
    "HttpRequest.sslOptions": HT + "test_ssl_insecure_trust_all_certificates",
    "HttpDownload.id": HT + "test_download_streams_into_storage_named_as_the_server_says",
    "HttpDownload.type": HT + "test_download_streams_into_storage_named_as_the_server_says",
    "HttpDownload.description": DOCS,
    "HttpDownload.disabled": OFF,
    "HttpDownload.allowFailure": MAY_FAIL,
    "HttpDownload.allowWarning": MAY_WARN,
    "HttpDownload.retry": RETRY,
    "HttpDownload.timeout": HT + "test_the_task_timeout_closes_the_connection_at_once",
    "HttpDownload.workerGroup": GROUP,
    "HttpDownload.logLevel": LOGS,
    "HttpDownload.logToFile": REFUSED,
    "HttpDownload.runIf": SKIP,
    "HttpDownload.uri": HT + "test_download_streams_into_storage_named_as_the_server_says",
    "HttpDownload.method": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpDownload.body": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpDownload.formData": HT + "test_form_data_is_url_encoded_or_multipart_with_storage_files",
    "HttpDownload.contentType": HT + "test_content_type_and_default_charset_shape_the_body",
    "HttpDownload.headers": HT + "test_request_sends_method_headers_and_body_and_gives_kestras_outputs",
    "HttpDownload.options": HT + "test_a_failed_status_fails_the_task_unless_allow_failed",
    "HttpDownload.allowFailed": HT + "test_a_failed_status_fails_the_task_unless_allow_failed",
    "HttpDownload.sslOptions": HT + "test_ssl_insecure_trust_all_certificates",
    "HttpRequest.encryptBody": REFUSED,
    "HttpDownload.failOnEmptyResponse": HT + "test_download_of_nothing_fails_unless_fail_on_empty_response_is_false",
    "HttpOptions.timeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpOptions.proxy": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.auth": HT + "test_basic_bearer_and_digest_auth",
    "HttpOptions.ssl": HT + "test_ssl_insecure_trust_all_certificates",
    "HttpOptions.followRedirects": HT + "test_redirects_are_followed_unless_follow_redirects_is_false",
    "HttpOptions.allowFailed": HT + "test_a_failed_status_fails_the_task_unless_allow_failed",
    "HttpOptions.defaultCharset": HT + "test_content_type_and_default_charset_shape_the_body",
    "HttpOptions.logs": HT + "test_logs_show_what_was_sent_and_received",
    "HttpOptions.connectTimeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpOptions.readTimeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpOptions.readIdleTimeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpOptions.connectionPoolIdleTimeout": HT + "test_connection_pool_idle_timeout_says_it_has_no_effect",
    "HttpOptions.maxContentLength": HT + "test_request_bodies_are_bounded_text",
    "HttpOptions.proxyType": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.proxyAddress": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.proxyPort": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.proxyUsername": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.proxyPassword": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpOptions.basicAuthUser": HT + "test_basic_bearer_and_digest_auth",
    "HttpOptions.basicAuthPassword": HT + "test_basic_bearer_and_digest_auth",
    "HttpOptions.logLevel": HT + "test_logs_show_what_was_sent_and_received",
    "HttpTimeout.connectTimeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpTimeout.readIdleTimeout": HT + "test_timeouts_fail_the_task_saying_so",
    "HttpProxy.type": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpProxy.address": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpProxy.port": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpProxy.username": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpProxy.password": HT + "test_proxy_options_send_the_request_through_the_proxy",
    "HttpBasicAuth.type": HT + "test_basic_bearer_and_digest_auth",
    "HttpBasicAuth.username": HT + "test_basic_bearer_and_digest_auth",
    "HttpBasicAuth.password": HT + "test_basic_bearer_and_digest_auth",
    "HttpBearerAuth.type": HT + "test_basic_bearer_and_digest_auth",
    "HttpBearerAuth.token": HT + "test_basic_bearer_and_digest_auth",
    "HttpDigestAuth.type": HT + "test_basic_bearer_and_digest_auth",
    "HttpDigestAuth.username": HT + "test_basic_bearer_and_digest_auth",
    "HttpDigestAuth.password": HT + "test_basic_bearer_and_digest_auth",
    "HttpSsl.insecureTrustAllCertificates": HT + "test_ssl_insecure_trust_all_certificates",
    "DockerOptions.host": DK + "test_unreachable_daemon_is_a_clear_error",
    "DockerOptions.config": DO + "test_config_json_gives_the_auth_of_the_images_registry",
    "DockerOptions.credentials": DO + "test_credentials_for_the_images_registry_are_sent_with_the_pull",
    "DockerOptions.pullPolicy": DK + "test_missing_image_is_a_clear_error", "DockerOptions.cpu": DOCKER_SHAPE,
    "DockerOptions.memory": DOCKER_SHAPE, "DockerOptions.shmSize": DOCKER_SHAPE,
    "DockerOptions.networkMode": DOCKER_SHAPE, "DockerOptions.user": DOCKER_SHAPE,
    "DockerOptions.entryPoint": DO + "test_entry_point_replaces_the_images", "DockerOptions.extraHosts": DOCKER_SHAPE,
    "DockerOptions.volumes": DO + "test_volumes_mount_host_folders_as_written",
    "DockerOptions.deviceRequests": DOCKER_DEVICES,
    "DockerOptions.fileHandlingStrategy": DK + "test_mount_strategy_shares_the_folder",
    "DockerOptions.delete": DK + "test_no_container_left_after_failure_or_timeout",
    "DockerOptions.privileged": DO + "test_privileged_asks_the_engine_for_every_capability",
    "BatchOptions.accessKeyId": AO + "test_static_keys_sign_every_request",
    "BatchOptions.secretKeyId": AO + "test_static_keys_sign_every_request",
    "BatchOptions.sessionToken": AO + "test_session_token_goes_with_temporary_keys",
    "BatchOptions.region": AO + "test_region_chooses_where_the_job_goes",
    "BatchOptions.endpointOverride": AW + "test_unreachable_endpoint_is_a_clear_error",
    "BatchOptions.stsRoleArn": AW + "test_sts_role_is_assumed", "BatchOptions.stsRoleExternalId": STS_OPTIONS,
    "BatchOptions.stsRoleSessionName": AW + "test_sts_role_is_assumed",
    "BatchOptions.stsRoleSessionDuration": STS_OPTIONS, "BatchOptions.stsEndpointOverride": STS_OPTIONS,
    "BatchOptions.computeEnvironmentArn": AW + "test_missing_compute_environment_property",
    "BatchOptions.jobQueueArn": AW + "test_a_queue_is_created_when_none_is_given",
    "BatchOptions.executionRoleArn": AWS_JOB, "BatchOptions.taskRoleArn": AWS_JOB,
    "BatchOptions.bucket": AW + "test_without_bucket_files_are_refused", "BatchOptions.resources": AWS_JOB,
    "BatchOptions.waitUntilCompletion": AO + "test_wait_until_completion_stops_a_job_that_runs_on",
    "BatchOptions.sidecarResources": AO + "test_sidecar_resources_are_refused",
    "BatchOptions.completionCheckInterval": AW + "test_lines_are_followed_live",
    "BatchOptions.delete": AW + "test_delete_false_keeps_definition_and_objects",
    "BatchOptions.resume": AW + "test_run_follows_a_left_behind_job_instead_of_a_duplicate",
    "GcpBatchOptions.projectId": GC + "test_project_and_region_are_required",
    "GcpBatchOptions.region": GC + "test_project_and_region_are_required",
    "GcpBatchOptions.serviceAccount": GO + "test_service_account_key_signs_every_call",
    "GcpBatchOptions.impersonatedServiceAccount": GO + "test_impersonated_service_account_is_who_the_calls_speak_for",
    "GcpBatchOptions.scopes": GO + "test_scopes_are_the_scopes_of_the_token",
    "GcpBatchOptions.bucket": GC + "test_files_travel_through_the_bucket",
    "GcpBatchOptions.machineType": GC + "test_job_body_is_what_kestra_sends",
    "GcpBatchOptions.reservation": GC + "test_job_body_is_what_kestra_sends",
    "GcpBatchOptions.computeResource": GC + "test_job_body_is_what_kestra_sends",
    "GcpBatchOptions.networkInterfaces": GC + "test_job_body_is_what_kestra_sends",
    "GcpBatchOptions.entryPoint": GC + "test_job_body_is_what_kestra_sends",
    "GcpBatchOptions.waitUntilCompletion": GO + "test_wait_until_completion_bounds_a_run_without_timeout",
    "GcpBatchOptions.completionCheckInterval": GC + "test_lines_arrive_before_the_job_ends",
    "GcpBatchOptions.waitForLogInterval": GC + "test_lines_arrive_before_the_job_ends",
    "GcpBatchOptions.delete": GC + "test_delete_removes_the_job_and_the_prefix",
    "GcpBatchOptions.resume": GC + "test_resume_false_starts_a_new_job", "Label.key": DOCS, "Label.value": DOCS,
    "StringInput.id": IN + "test_string", "StringInput.required": IN + "test_missing_required",
    "StringInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "StringInput.description": DOCS,
    "StringInput.validator": IN + "test_string_validator_full_match", "StringInput.type": IN + "test_string",
    "SecretInput.id": IN + "test_secret", "SecretInput.required": IN + "test_missing_required",
    "SecretInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "SecretInput.description": DOCS,
    "SecretInput.validator": IN + "test_secret", "SecretInput.type": IN + "test_secret",
    "IntInput.id": IN + "test_int", "IntInput.required": IN + "test_optional_missing_is_none",
    "IntInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "IntInput.description": DOCS,
    "IntInput.type": IN + "test_int", "IntInput.min": IN + "test_int_bounds", "IntInput.max": IN + "test_int_bounds",
    "FloatInput.id": IN + "test_float", "FloatInput.required": IN + "test_missing_required",
    "FloatInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "FloatInput.description": DOCS,
    "FloatInput.type": IN + "test_float", "FloatInput.min": IN + "test_float", "FloatInput.max": IN + "test_float",
    "BooleanInput.id": IN + "test_boolean", "BooleanInput.required": IN + "test_flow_style_list_validation",
    "BooleanInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "BooleanInput.description": DOCS,
    "BooleanInput.type": IN + "test_boolean", "DateTimeInput.id": IN + "test_datetime",
    "DateTimeInput.required": IN + "test_missing_required",
    "DateTimeInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "DateTimeInput.description": DOCS,
    "DateTimeInput.type": IN + "test_datetime", "DateTimeInput.after": IN + "test_datetime_after_before",
    "DateTimeInput.before": IN + "test_datetime_after_before", "DateInput.id": IN + "test_date",
    "DateInput.required": IN + "test_missing_required",
    "DateInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "DateInput.description": DOCS,
    "DateInput.type": IN + "test_date", "DateInput.after": IN + "test_date", "DateInput.before": IN + "test_date",
    "TimeInput.id": IN + "test_time", "TimeInput.required": IN + "test_missing_required",
    "TimeInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "TimeInput.description": DOCS,
    "TimeInput.type": IN + "test_time", "TimeInput.after": IN + "test_time", "TimeInput.before": IN + "test_time",
    "DurationInput.id": IN + "test_duration", "DurationInput.required": IN + "test_missing_required",
    "DurationInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "DurationInput.description": DOCS,
    "DurationInput.type": IN + "test_duration", "DurationInput.min": IN + "test_duration_min_max",
    "DurationInput.max": IN + "test_duration_min_max", "JsonInput.id": IN + "test_json",
    "JsonInput.required": IN + "test_missing_required",
    "JsonInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "JsonInput.description": DOCS,
    "JsonInput.type": IN + "test_json", "YamlInput.id": IN + "test_yaml",
    "YamlInput.required": IN + "test_missing_required",
    "YamlInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "YamlInput.description": DOCS,
    "YamlInput.type": IN + "test_yaml", "UriInput.id": IN + "test_uri",
    "UriInput.required": IN + "test_missing_required",
    "UriInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "UriInput.description": DOCS,
    "UriInput.type": IN + "test_uri", "EmailInput.id": IN + "test_email",
    "EmailInput.required": IN + "test_missing_required",
    "EmailInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "EmailInput.description": DOCS,
    "EmailInput.type": IN + "test_email", "SelectInput.id": IN + "test_select",
    "SelectInput.required": IN + "test_missing_required",
    "SelectInput.defaults": IN + "test_select_defaults_and_auto_select_first", "SelectInput.description": DOCS,
    "SelectInput.allow_custom_value": IN + "test_select",
    "SelectInput.auto_select_first": IN + "test_select_defaults_and_auto_select_first",
    "SelectInput.type": IN + "test_select", "SelectInput.values": IN + "test_select",
    "MultiselectInput.id": IN + "test_multiselect", "MultiselectInput.required": IN + "test_missing_required",
    "MultiselectInput.defaults": IN + "test_multiselect", "MultiselectInput.description": DOCS,
    "MultiselectInput.allow_custom_value": IN + "test_multiselect",
    "MultiselectInput.auto_select_first": IN + "test_multiselect", "MultiselectInput.type": IN + "test_multiselect",
    "MultiselectInput.values": IN + "test_multiselect", "MultiselectInput.options": IN + "test_multiselect",
    "ArrayInput.id": IN + "test_array", "ArrayInput.required": IN + "test_missing_required",
    "ArrayInput.defaults": IN + "test_default_satisfies_required_and_is_coerced", "ArrayInput.description": DOCS,
    "ArrayInput.type": IN + "test_array", "ArrayInput.item_type": IN + "test_array",
    "FileInput.id": IN + "test_file_from_path", "FileInput.required": IN + "test_file_model",
    "FileInput.defaults": IN + "test_file_existing_uri_kept", "FileInput.description": DOCS,
    "FileInput.type": IN + "test_file_from_path", "Output.id": OUTPUTS, "Output.type": OUTPUTS,
    "Output.value": OUTPUTS, "Output.description": DOCS, "Schedule.id": SCHEDULE, "Schedule.description": DOCS,
    "Schedule.disabled": SCHEDULE_OFF, "Schedule.timezone": SCHEDULE_ZONE, "Schedule.inputs": SCHEDULE,
    "Schedule.recoverMissedSchedules": MISSED, "Schedule.lateMaximumDelay": LATE, "Schedule.type": SCHEDULE,
    "Schedule.cron": SCHEDULE_ZONE, "Schedule.withSeconds": SCHEDULE_ZONE, "ScheduleOnDates.id": ON_DATES,
    "ScheduleOnDates.description": DOCS, "ScheduleOnDates.disabled": SCHEDULE_OFF,
    "ScheduleOnDates.timezone": B + "test_schedule_on_dates_reads_dates_without_an_offset_in_its_time_zone",
    "ScheduleOnDates.inputs": SCHEDULE, "ScheduleOnDates.recoverMissedSchedules": MISSED,
    "ScheduleOnDates.lateMaximumDelay": LATE, "ScheduleOnDates.type": ON_DATES, "ScheduleOnDates.dates": ON_DATES,
    "FlowTrigger.id": WATCHER, "FlowTrigger.type": WATCHER, "FlowTrigger.description": DOCS,
    "FlowTrigger.disabled": WATCHERS, "FlowTrigger.inputs": WATCHER, "FlowTrigger.states": WATCHERS,
    "FlowTrigger.conditions": WATCHER, "FlowTrigger.preconditions": REFUSED, "PluginDefault.type": DEFAULTS,
    "PluginDefault.values": DEFAULTS, "PluginDefault.forced": LD + "test_forced_plugin_defaults_override_the_task",
    "WorkerGroup.key": GROUP, "WorkerGroup.fallback": WG + "test_fallback_fail_fails_the_task_run_naming_the_group",
    "Retry.type": RETRY_EXP, "Retry.interval": RETRY, "Retry.maxInterval": RETRY_DURATIONS,
    "Retry.minInterval": RETRY_DURATIONS, "Retry.delayFactor": RETRY_EXP, "Retry.maxAttempt": RETRY,
    "Retry.maxAttempts": RETRY_OPTIONS, "Retry.maxDuration": RETRY_DURATIONS, "Retry.behavior": RNE,
    "Retry.warningOnRetry": RETRY_OPTIONS, "Concurrency.limit": CONCURRENCY, "Concurrency.behavior": CONCURRENCY,
    "DagTask.task": DAG, "DagTask.dependsOn": DAG,
    "NamespaceFiles.enabled": SC + "test_namespace_files_include_exclude",
    "NamespaceFiles.include": SC + "test_namespace_files_include_exclude",
    "NamespaceFiles.exclude": SC + "test_namespace_files_include_exclude",
    "TaskRunnerRef.type": SC + "test_spec_handed_to_the_runner",
    "Credentials.registry": DO + "test_credentials_of_another_registry_are_not_sent",
    "Credentials.username": DO + "test_credentials_for_the_images_registry_are_sent_with_the_pull",
    "Credentials.password": DO + "test_credentials_for_the_images_registry_are_sent_with_the_pull",
    "Credentials.auth": DO + "test_credentials_registry_and_an_auth_string",
    "Credentials.identityToken": DO + "test_identity_token_is_exchanged_for_an_access_token",
    "Credentials.registryToken": DO + "test_registry_token_is_sent_as_the_bearer",
    "Cpu.cpus": DOCKER_SHAPE, "Memory.memory": DOCKER_SHAPE, "Memory.memorySwap": DOCKER_SHAPE,
    "Memory.memorySwappiness": DOCKER_SHAPE, "Memory.memoryReservation": DOCKER_SHAPE,
    "Memory.oomKillDisable": DOCKER_SHAPE, "DeviceRequest.driver": DOCKER_DEVICES,
    "DeviceRequest.count": DOCKER_DEVICES, "DeviceRequest.deviceIds": DOCKER_DEVICES,
    "DeviceRequest.capabilities": DOCKER_DEVICES, "DeviceRequest.options": DOCKER_DEVICES,
    "Resources.request": AWS_JOB, "ComputeResource.cpu": GC + "test_job_body_is_what_kestra_sends",
    "ComputeResource.memory": GC + "test_job_body_is_what_kestra_sends",
    "ComputeResource.bootDisk": GC + "test_job_body_is_what_kestra_sends",
    "NetworkInterface.network": GC + "test_job_body_is_what_kestra_sends",
    "NetworkInterface.subnetwork": GC + "test_job_body_is_what_kestra_sends",
    "ExecutionFlowCondition.type": WATCHER, "ExecutionFlowCondition.namespace": WATCHER,
    "ExecutionFlowCondition.flowId": WATCHER, "ExecutionStatusCondition.type": CONDITIONS,
    "ExecutionStatusCondition.in_": CONDITIONS, "ExecutionStatusCondition.notIn": WATCHERS,
    "ExecutionNamespaceCondition.type": CONDITIONS, "ExecutionNamespaceCondition.namespace": CONDITIONS,
    "ExecutionNamespaceCondition.comparison": CONDITIONS, "ExecutionNamespaceCondition.prefix": WATCHERS,
    "Request.cpu": AWS_JOB, "Request.memory": AWS_JOB,
    "Cache.patterns": WDC + "test_the_next_execution_finds_the_kept_files_of_its_own_loop_value",
    "Cache.ttl": WDC + "test_an_expired_cache_and_a_failed_run_give_nothing",
    "SLA.id": SLA + "test_max_duration_cancels_a_long_execution_and_labels_it",
    "SLA.type": SLA + "test_an_assertion_on_outputs_fails_the_execution_at_the_step_it_breaks",
    "SLA.behavior": SLA + "test_a_breach_with_behavior_none_only_labels_the_execution",
    "SLA.labels": SLA + "test_a_breach_with_behavior_none_only_labels_the_execution",
    "SLA.duration": SLA + "test_max_duration_cancels_a_long_execution_and_labels_it",
    "SLA.assert_": SLA + "test_an_assertion_on_outputs_fails_the_execution_at_the_step_it_breaks",
    "Schedule.conditions": SCC + "test_only_the_dates_the_conditions_let_through_fire",
    "ScheduleOnDates.conditions": SCC + "test_schedule_on_dates_takes_conditions_too",
    "DayWeek.type": SCC + "test_day_of_week_weekend_and_day_in_month",
    "DayWeek.dayOfWeek": SCC + "test_day_of_week_weekend_and_day_in_month",
    "DayWeek.date": SCC + "test_a_condition_that_cannot_be_evaluated_skips_its_date_and_says_why",
    "DayWeekInMonth.type": SCC + "test_day_of_week_weekend_and_day_in_month",
    "DayWeekInMonth.dayOfWeek": SCC + "test_day_of_week_weekend_and_day_in_month",
    "DayWeekInMonth.dayInMonth": SCC + "test_day_of_week_weekend_and_day_in_month",
    "DayWeekInMonth.date": SCC + "test_the_date_is_taken_in_the_triggers_time_zone",
    "Weekend.type": SCC + "test_day_of_week_weekend_and_day_in_month",
    "Weekend.date": SCC + "test_the_date_is_taken_in_the_triggers_time_zone",
    "PublicHoliday.type": SCC + "test_public_holidays_of_a_country_and_of_a_subdivision",
    "PublicHoliday.country": SCC + "test_public_holidays_of_a_country_and_of_a_subdivision",
    "PublicHoliday.subDivision": SCC + "test_public_holidays_of_a_country_and_of_a_subdivision",
    "PublicHoliday.date": SCC + "test_the_date_is_taken_in_the_triggers_time_zone",
    "TimeBetween.type": SCC + "test_time_between_is_strict_and_compares_instants",
    "TimeBetween.after": SCC + "test_time_between_is_strict_and_compares_instants",
    "TimeBetween.before": SCC + "test_time_between_is_strict_and_compares_instants",
    "TimeBetween.date": SCC + "test_the_date_is_taken_in_the_triggers_time_zone",
    "DateTimeBetween.type": SCC + "test_date_time_between_is_inclusive",
    "DateTimeBetween.after": SCC + "test_date_time_between_is_inclusive",
    "DateTimeBetween.before": SCC + "test_date_time_between_is_inclusive",
    "DateTimeBetween.date": SCC + "test_date_time_between_is_inclusive",
    "Expression.type": SCC + "test_or_not_and_expression",
    "Expression.expression": SCC + "test_an_expression_condition_reads_the_namespaces_kv_store",
    "Not.type": SCC + "test_or_not_and_expression",
    "Not.conditions": SCC + "test_public_holidays_of_a_country_and_of_a_subdivision",
    "Or.type": SCC + "test_or_not_and_expression",
    "Or.conditions": SCC + "test_or_not_and_expression",
}

# ForEachItem, and the internal tasks it makes (refused when written by hand; exercised through ForEachItem).
FEI_RUN = FEI + "test_one_subflow_per_batch_with_the_batch_and_its_number_as_inputs"
FEI_MODES = FEI + "test_batches_by_partitions_bytes_regex_or_rows_each_line_ended_by_the_separator"
FEI_LABELS = FEI + "test_labels_inherited_and_rendered_per_batch_and_a_pinned_revision"
FEI_FAIL = FEI + "test_a_failing_subflow_fails_the_task_unless_transmit_failed_is_off"
FEI_ALLOWED = FEI + "test_allowed_to_fail_it_ends_warning_after_its_errors_and_finally"
FEI_INTERNAL = FEI + "test_the_internal_tasks_are_made_by_for_each_item_only"
FEI_MERGE = FEI + "test_the_subflows_outputs_are_gathered_in_batch_order"
TABLE.update({
    "ForEachItem.id": FEI_RUN, "ForEachItem.type": FEI_RUN, "ForEachItem.items": FEI_RUN,
    "ForEachItem.batch": FEI_RUN, "ForEachItem.namespace": FEI_RUN, "ForEachItem.flowId": FEI_RUN,
    "ForEachItem.inputs": FEI_RUN, "ForEachItem.revision": FEI_LABELS, "ForEachItem.labels": FEI_LABELS,
    "ForEachItem.inheritLabels": FEI_LABELS, "ForEachItem.transmitFailed": FEI_FAIL,
    "ForEachItem.wait": FEI + "test_without_wait_the_task_ends_once_the_subflows_are_started",
    "ForEachItem.tasks": FEI + "test_bad_properties_are_refused_at_load", "ForEachItem.scheduleDate": REFUSED,
    "ForEachItem.restartBehavior": REFUSED, "ForEachItem.retry": REFUSED, "ForEachItem.logToFile": REFUSED,
    "ForEachItem.description": DOCS, "ForEachItem.disabled": OFF, "ForEachItem.runIf": SKIP,
    "ForEachItem.allowFailure": FEI_ALLOWED, "ForEachItem.allowWarning": FEI_ALLOWED,
    "ForEachItem.errors": FEI_ALLOWED, "ForEachItem.finally_": FEI_ALLOWED,
    "Batch.rows": FEI_MODES, "Batch.bytes": FEI_MODES, "Batch.partitions": FEI_MODES,
    "Batch.regexPattern": FEI_MODES, "Batch.separator": FEI_MODES,
})
_COMMON = ("id", "type", "description", "disabled", "allowFailure", "allowWarning", "retry", "timeout", "workerGroup",
           "logLevel", "logToFile", "runIf", "madeBy")
TABLE.update({f"{model}.{name}": FEI_INTERNAL for model in ("ForEachItemSplit", "ForEachItemExecutable",
                                                            "ForEachItemMergeOutputs") for name in _COMMON})
TABLE.update({"ForEachItemSplit.items": FEI_RUN, "ForEachItemSplit.batch": FEI_MODES,
              "ForEachItemExecutable.errors": FEI_INTERNAL, "ForEachItemExecutable.finally_": FEI_INTERNAL,
              "ForEachItemMergeOutputs.id": FEI_MERGE})
TABLE.update({f"ForEachItemExecutable.{name}": FEI_RUN for name in (
    "namespace", "flowId", "revision", "inputs", "labels", "wait", "transmitFailed", "inheritLabels")})
LF = "tests/unit/test_log_fetch.py::"
FETCH = LF + "test_fetch_filters_the_current_executions_logs_by_level_and_task"
FETCH_OTHER = LF + "test_fetch_reads_another_execution_of_its_namespace_only"
TABLE.update({
    "Fetch.id": FETCH, "Fetch.type": FETCH, "Fetch.level": FETCH, "Fetch.tasksId": FETCH,
    "Fetch.namespace": FETCH_OTHER, "Fetch.flowId": FETCH_OTHER, "Fetch.executionId": FETCH_OTHER,
    "Fetch.description": DOCS, "Fetch.disabled": OFF, "Fetch.allowFailure": MAY_FAIL, "Fetch.allowWarning": MAY_WARN,
    "Fetch.retry": RETRY, "Fetch.timeout": TIMEOUT, "Fetch.workerGroup": GROUP, "Fetch.logLevel": LOGS,
    "Fetch.logToFile": REFUSED, "Fetch.runIf": SKIP,
})
NSF = "tests/unit/test_namespace_file_tasks.py::"
NSF_DOWN = NSF + "test_download_then_delete_the_files_a_pattern_matches"
NSF_UP = NSF + "test_upload_from_a_working_directory_and_from_a_files_map_with_conflicts"
NSF_OTHER = NSF + "test_other_namespaces_and_misplaced_options_are_refused"
TABLE.update({
    "UploadFiles.id": NSF_UP, "UploadFiles.type": NSF_UP, "UploadFiles.namespace": NSF_OTHER,
    "UploadFiles.files": NSF_UP, "UploadFiles.filesMap": NSF_UP, "UploadFiles.destination": NSF_UP,
    "UploadFiles.conflict": NSF_UP, "DownloadFiles.id": NSF_DOWN, "DownloadFiles.type": NSF_DOWN,
    "DownloadFiles.namespace": NSF_OTHER, "DownloadFiles.files": NSF_DOWN,
    "DownloadFiles.destination": NSF_DOWN,
    "DeleteFiles.id": NSF_DOWN, "DeleteFiles.type": NSF_DOWN, "DeleteFiles.namespace": NSF_DOWN,
    "DeleteFiles.files": NSF_DOWN, "DeleteFiles.deleteParentFolder": REFUSED,
})
for _model in ("UploadFiles", "DownloadFiles", "DeleteFiles"):
    TABLE.update({f"{_model}.description": DOCS, f"{_model}.disabled": OFF, f"{_model}.allowFailure": MAY_FAIL,
                  f"{_model}.allowWarning": MAY_WARN, f"{_model}.retry": RETRY, f"{_model}.timeout": TIMEOUT,
                  f"{_model}.workerGroup": GROUP, f"{_model}.logLevel": LOGS, f"{_model}.logToFile": REFUSED,
                  f"{_model}.runIf": SKIP})
STATE = "tests/unit/test_state_tasks.py::test_state_is_kept_between_executions_merged_per_name_and_loop_value"
STATE_MISSING = "tests/unit/test_state_tasks.py::test_get_and_delete_of_a_missing_state_fail_only_when_asked"
for _model in ("StateSet", "StateGet", "StateDelete"):
    TABLE.update({f"{_model}.{name}": STATE for name in ("id", "type", "name", "namespace", "taskrunValue")})
    TABLE.update({f"{_model}.description": DOCS, f"{_model}.disabled": OFF, f"{_model}.allowFailure": MAY_FAIL,
                  f"{_model}.allowWarning": MAY_WARN, f"{_model}.retry": RETRY, f"{_model}.timeout": TIMEOUT,
                  f"{_model}.workerGroup": GROUP, f"{_model}.logLevel": LOGS, f"{_model}.logToFile": REFUSED,
                  f"{_model}.runIf": SKIP})
TABLE.update({"StateSet.data": STATE, "StateGet.errorOnMissing": STATE_MISSING,
              "StateDelete.errorOnMissing": STATE_MISSING, "StateDelete.id": STATE_MISSING,
              "StateDelete.type": STATE_MISSING, "StateDelete.name": STATE_MISSING})

# What every flowable inherits from Task (tests/unit/test_flowable_properties.py): a timeout enforced by the executor
# (refused where it cannot stop what runs: child executions, LoopUntil's own maxDuration), logLevel filtering the
# executor's lines, workerGroup refused (a flowable runs in the executor).
FP = "tests/unit/test_flowable_properties.py::"
FLOWABLE_TIMEOUT = FP + "test_a_flowable_that_outlives_its_timeout_fails_and_stops_what_runs_under_it"
for _model in ("Sequential", "AllowFailure", "Parallel", "If", "Switch", "ForEach", "EachSequential", "EachParallel",
               "Dag", "LoopUntil", "ForEachItem", "Pause", "Subflow"):
    TABLE.update({f"{_model}.workerGroup": REFUSED,
                  f"{_model}.logLevel": FP + "test_a_flowable_log_level_filters_the_executor_lines_about_it"})
    if _model not in ("LoopUntil", "ForEachItem", "Pause", "Subflow"):
        TABLE[f"{_model}.timeout"] = FLOWABLE_TIMEOUT
PAUSE_ALLOWED = FP + "test_a_pause_that_ends_badly_is_allowed_as_its_allow_properties_say"
TABLE.update({
    "LoopUntil.timeout": REFUSED, "ForEachItem.timeout": REFUSED, "Subflow.timeout": REFUSED,
    "Pause.allowFailure": PAUSE_ALLOWED, "Pause.allowWarning": PAUSE_ALLOWED, "Pause.retry": REFUSED,
    "Pause.errors": REFUSED, "Pause.finally_": REFUSED, "Subflow.errors": REFUSED, "Subflow.finally_": REFUSED,
    "WorkingDirectory.timeout":
        FP + "test_a_working_directory_timeout_stops_the_running_child_and_starts_no_other",
    "Flow.revision": FP + "test_a_revision_written_in_the_flow_is_replaced_by_the_stored_one",
})
for _model in ("PythonCommands", "PythonScript", "ShellCommands", "ShellScript", "NodeCommands", "NodeScript"):
    TABLE[f"{_model}.targetOS"] = SC + "test_target_os_linux_and_auto_run_the_commands_with_a_posix_shell"
TG = "tests/unit/test_trigger_toggle.py::"
TOGGLE = TG + "test_a_schedule_switched_off_lets_its_dates_pass_and_switched_on_fires_again"
TABLE.update({"Toggle.id": TOGGLE, "Toggle.type": TOGGLE, "Toggle.trigger": TOGGLE, "Toggle.enabled": TOGGLE,
              "Toggle.flowId": TOGGLE,
              "Toggle.namespace": TG + "test_a_trigger_it_cannot_toggle_fails_the_task_saying_why",
              "Toggle.description": DOCS, "Toggle.disabled": OFF, "Toggle.allowFailure": MAY_FAIL,
              "Toggle.allowWarning": MAY_WARN, "Toggle.retry": RETRY, "Toggle.timeout": TIMEOUT,
              "Toggle.workerGroup": GROUP, "Toggle.logLevel": LOGS, "Toggle.logToFile": REFUSED, "Toggle.runIf": SKIP})
TT = "tests/unit/test_templated_task.py::test_the_rendered_spec_runs_as_the_task_and_gives_its_outputs"
TABLE.update({"TemplatedTask.id": TT, "TemplatedTask.type": TT, "TemplatedTask.spec": TT,
              "TemplatedTask.description": DOCS, "TemplatedTask.disabled": OFF, "TemplatedTask.allowFailure": MAY_FAIL,
              "TemplatedTask.allowWarning": MAY_WARN, "TemplatedTask.retry": RETRY, "TemplatedTask.timeout": TIMEOUT,
              "TemplatedTask.workerGroup": GROUP, "TemplatedTask.logLevel": LOGS, "TemplatedTask.logToFile": REFUSED,
              "TemplatedTask.runIf": SKIP,
    "StringInput.display_name": INPUT_NAME, "StringInput.depends_on": INPUT_ON, "StringInput.prefill": PREFILL,
    "SecretInput.display_name": INPUT_NAME, "SecretInput.depends_on": INPUT_ON, "SecretInput.prefill": PREFILL,
    "IntInput.display_name": INPUT_NAME, "IntInput.depends_on": INPUT_ON, "IntInput.prefill": PREFILL,
    "FloatInput.display_name": INPUT_NAME, "FloatInput.depends_on": INPUT_ON, "FloatInput.prefill": PREFILL,
    "BooleanInput.display_name": INPUT_NAME, "BooleanInput.depends_on": INPUT_ON, "BooleanInput.prefill": PREFILL,
    "DateTimeInput.display_name": INPUT_NAME, "DateTimeInput.depends_on": INPUT_ON, "DateTimeInput.prefill": PREFILL,
    "DateInput.display_name": INPUT_NAME, "DateInput.depends_on": INPUT_ON, "DateInput.prefill": PREFILL,
    "TimeInput.display_name": INPUT_NAME, "TimeInput.depends_on": INPUT_ON, "TimeInput.prefill": PREFILL,
    "DurationInput.display_name": INPUT_NAME, "DurationInput.depends_on": INPUT_ON, "DurationInput.prefill": PREFILL,
    "JsonInput.display_name": INPUT_NAME, "JsonInput.depends_on": INPUT_ON, "JsonInput.prefill": PREFILL,
    "YamlInput.display_name": INPUT_NAME, "YamlInput.depends_on": INPUT_ON, "YamlInput.prefill": PREFILL,
    "UriInput.display_name": INPUT_NAME, "UriInput.depends_on": INPUT_ON, "UriInput.prefill": PREFILL,
    "EmailInput.display_name": INPUT_NAME, "EmailInput.depends_on": INPUT_ON, "EmailInput.prefill": PREFILL,
    "SelectInput.display_name": INPUT_NAME, "SelectInput.depends_on": INPUT_ON, "SelectInput.prefill": PREFILL,
    "MultiselectInput.display_name": INPUT_NAME, "MultiselectInput.depends_on": INPUT_ON,
    "MultiselectInput.prefill": PREFILL,
    "ArrayInput.display_name": INPUT_NAME, "ArrayInput.depends_on": INPUT_ON, "ArrayInput.prefill": PREFILL,
    "FileInput.display_name": INPUT_NAME, "FileInput.depends_on": INPUT_ON, "FileInput.prefill": PREFILL,
    "DependsOn.inputs": II + "test_a_dependency_declared_later_is_resolved_first",
    "DependsOn.condition": INPUT_ON,
    "Output.displayName": II + "test_a_required_output_that_is_null_fails_the_execution_naming_it",
    "Output.required": INPUT_ON,
})

# -- SQL tasks (workers/plugins/sql.py): every database's Query and Queries, each property by the test of it
SQ = "tests/integration/test_sql_tasks.py::"
SQL_FETCH = SQ + "test_each_fetch_type_gives_kestras_outputs"
SQL_ERRORS = SQ + "test_bad_sql_and_a_refused_connection_are_clear_failures"
SQL_PROPERTIES = {
    "id": SQL_FETCH, "type": SQL_FETCH, "description": DOCS, "disabled": OFF, "allowFailure": MAY_FAIL,
    "allowWarning": MAY_WARN, "retry": RETRY, "timeout": SQ + "test_a_timeout_cancels_the_statement_on_the_database",
    "workerGroup": GROUP, "logLevel": LOGS, "logToFile": REFUSED, "runIf": SKIP,
    "url": SQL_FETCH, "username": SQL_ERRORS, "password": SQL_ERRORS,
    "timeZoneId": SQ + "test_time_zone_id_places_timestamps", "sql": SQL_FETCH,
    "parameters": SQ + "test_parameters_are_bound_never_formatted_into_the_sql", "fetchType": SQL_FETCH,
    "fetchSize": SQ + "test_a_store_of_100000_rows_keeps_the_workers_memory_flat",
    "afterSQL": SQ + "test_after_sql_runs_in_the_same_transaction",
    "store": SQL_FETCH, "fetchOne": SQL_FETCH, "fetch": SQL_FETCH,
}
TABLE.update({f"{db}{kind}.{name}": entry for db in ("Postgres", "MySql", "MariaDb", "Sqlite", "DuckDb")
              for kind in ("Query", "Queries") for name, entry in SQL_PROPERTIES.items()})
TABLE.update({f"{db}Queries.transaction": SQ + "test_queries_run_a_script_in_one_transaction_unless_told"
              for db in ("Postgres", "MySql", "MariaDb", "Sqlite", "DuckDb")})

# -- polling triggers (app/model/polling.py; workers/plugins/sql_trigger.py, http_trigger.py, local_files.py)
PT = "tests/unit/test_polling_triggers.py::"
IPT = "tests/integration/test_polling_on_workers.py::"
POLLING = {
    "id": PT + "test_rows_fire_one_execution_with_trigger_rows_and_no_rows_fire_nothing",
    "type": PT + "test_rows_fire_one_execution_with_trigger_rows_and_no_rows_fire_nothing",
    "description": DOCS, "disabled": PT + "test_a_disabled_trigger_or_flow_is_not_evaluated",
    "interval": PT + "test_a_query_that_fails_is_a_failed_evaluation_not_a_stuck_trigger",
    "conditions": PT + "test_conditions_false_skip_the_evaluation",
    "stopAfter": PT + "test_stop_after_switches_the_trigger_off_once_an_execution_ends_so",
    "workerGroup": IPT + "test_a_postgres_trigger_is_evaluated_on_its_group_with_its_secret_resolved_there",
}
SQL_TRIGGER_PARAMS = PT + "test_the_sql_trigger_binds_parameters_and_stores_rows_in_the_execution_files"
SQL_TRIGGER = {
    **POLLING, "url": POLLING["id"], "sql": POLLING["id"], "afterSQL": POLLING["id"],
    "username": IPT + "test_a_postgres_trigger_is_evaluated_on_its_group_with_its_secret_resolved_there",
    "password": IPT + "test_a_postgres_trigger_is_evaluated_on_its_group_with_its_secret_resolved_there",
    "parameters": SQL_TRIGGER_PARAMS, "fetchType": SQL_TRIGGER_PARAMS, "fetchSize": SQL_TRIGGER_PARAMS,
    "timeZoneId": SQL_TRIGGER_PARAMS,
}
TABLE.update({f"{db}Trigger.{name}": entry for db in ("Postgres", "MySql", "MariaDb", "Sqlite", "DuckDb")
              for name, entry in SQL_TRIGGER.items()})
HTTP_TRIGGER = PT + "test_the_http_trigger_sends_its_request_as_the_request_task_does"
TABLE.update({f"HttpTrigger.{name}": entry for name, entry in POLLING.items()})
TABLE.update({f"HttpTrigger.{name}": HTTP_TRIGGER for name in (
    "uri", "method", "body", "formData", "contentType", "headers", "options")})
TABLE["HttpTrigger.responseCondition"] = PT + "test_the_http_trigger_fires_on_its_response_condition"
FILE_TRIGGER = PT + "test_the_file_trigger_fires_on_new_and_updated_files_and_moves_them"
TABLE.update({f"LocalTrigger.{name}": entry for name, entry in POLLING.items()})
TABLE.update({f"LocalTrigger.{name}": FILE_TRIGGER for name in (
    "from_", "action", "moveDirectory", "regExp", "recursive", "maxFiles")})

# -- notification tasks (workers/plugins/notifications.py)
NT = "tests/unit/test_notification_tasks.py::"
WEBHOOK = NT + "test_an_incoming_webhook_posts_its_rendered_payload"
WEBHOOK_OPTIONS = NT + "test_webhook_options_bound_the_call"
MAIL_ALL = NT + "test_mail_send_delivers_text_html_cc_attachments_and_images"
COMMON_TASK = {"description": DOCS, "disabled": OFF, "allowFailure": MAY_FAIL, "allowWarning": MAY_WARN,
               "retry": RETRY, "workerGroup": GROUP, "logLevel": LOGS, "logToFile": REFUSED, "runIf": SKIP}
for _hook in ("SlackIncomingWebhook", "TeamsIncomingWebhook", "DiscordIncomingWebhook", "GoogleChatIncomingWebhook"):
    TABLE.update({f"{_hook}.{name}": entry for name, entry in COMMON_TASK.items()})
    TABLE.update({f"{_hook}.id": WEBHOOK, f"{_hook}.type": WEBHOOK, f"{_hook}.url": WEBHOOK,
                  f"{_hook}.payload": WEBHOOK, f"{_hook}.options": WEBHOOK_OPTIONS,
                  f"{_hook}.timeout": HT + "test_the_task_timeout_closes_the_connection_at_once"})
TABLE.update({f"WebhookOptions.{name}": WEBHOOK_OPTIONS for name in (
    "connectTimeout", "readTimeout", "readIdleTimeout", "connectionPoolIdleTimeout", "maxContentLength",
    "defaultCharset")})
TABLE.update({f"MailSend.{name}": entry for name, entry in COMMON_TASK.items()})
TABLE.update({f"MailSend.{name}": MAIL_ALL for name in (
    "id", "type", "host", "port", "username", "password", "from_", "to", "cc", "subject", "htmlTextContent",
    "plainTextContent", "attachments", "embeddedImages")})
TABLE.update({"MailSend.transportStrategy": NT + "test_mail_send_over_tls_checks_the_servers_certificate",
              "MailSend.sessionTimeout": NT + "test_mail_send_failures_are_clear",
              "MailSend.timeout": TIMEOUT,
              "Attachment.uri": MAIL_ALL, "Attachment.name": MAIL_ALL, "Attachment.contentType": MAIL_ALL})

# -- execution-summary notifications (workers/plugins/execution_summaries.py)
ES = "tests/unit/test_execution_summaries.py::"
OWN_BODY = ES + "test_mail_execution_writes_its_own_body_and_slack_takes_one_message"
TABLE["SlackIncomingWebhook.messageText"] = ES + "test_slack_message_text_is_slacks_text"
SUMMARY_OF_TRIGGER = ES + "test_slack_execution_summarizes_the_failed_execution_that_started_its_flow"
SUMMARY_CHANNELS = ES + "test_each_channel_summarizes_the_current_execution"
SUMMARY_MAIL = ES + "test_mail_execution_sends_the_summary_as_html_and_text"
for _summary in ("SlackExecution", "TeamsExecution", "DiscordExecution", "GoogleChatExecution", "MailExecution"):
    TABLE.update({f"{_summary}.{name}": entry for name, entry in COMMON_TASK.items()})
    TABLE.update({f"{_summary}.id": SUMMARY_CHANNELS, f"{_summary}.type": SUMMARY_CHANNELS,
                  f"{_summary}.customMessage": SUMMARY_CHANNELS, f"{_summary}.customFields": SUMMARY_CHANNELS,
                  f"{_summary}.executionId": SUMMARY_OF_TRIGGER, f"{_summary}.timeout": TIMEOUT})
    if _summary != "MailExecution":
        TABLE.update({f"{_summary}.url": SUMMARY_CHANNELS, f"{_summary}.options": WEBHOOK_OPTIONS})
TABLE.update({f"SlackExecution.{name}": SUMMARY_OF_TRIGGER for name in ("channel", "username", "iconUrl", "iconEmoji")})
TABLE.update({"SlackExecution.messageText": SUMMARY_CHANNELS, "TeamsExecution.themeColor": SUMMARY_CHANNELS,
              "TeamsExecution.activityTitle": SUMMARY_CHANNELS, "TeamsExecution.activitySubtitle": SUMMARY_CHANNELS,
              "GoogleChatExecution.text": SUMMARY_CHANNELS})
TABLE.update({f"DiscordExecution.{name}": SUMMARY_CHANNELS for name in ("username", "avatarUrl", "content",
                                                                         "embedList")})
TABLE.update({f"Embed.{name}": SUMMARY_CHANNELS for name in (
    "title", "websiteUrl", "description", "thumbnail", "authorName", "color", "footer")})
TABLE.update({f"MailExecution.{name}": TABLE[f"MailSend.{name}"] for name in (
    "host", "port", "username", "password", "from_", "to", "cc", "attachments", "embeddedImages",
    "transportStrategy", "sessionTimeout")})
TABLE.update({"MailExecution.subject": SUMMARY_MAIL,
              "MailExecution.htmlTextContent": OWN_BODY, "MailExecution.plainTextContent": OWN_BODY})

# -- serdes conversions (workers/plugins/serdes.py)
SD = "tests/unit/test_serdes_tasks.py::"
ROUND_TRIP = SD + "test_csv_to_ion_to_json_and_back_to_csv"
CSV_READING = SD + "test_csv_reading_options"
CSV_WRITING = SD + "test_ion_to_csv_formats_dates_times_and_zones"
JSON_SHAPES = SD + "test_json_documents_and_arrays"
for _conversion in ("CsvToIon", "IonToCsv", "JsonToIon", "IonToJson"):
    TABLE.update({f"{_conversion}.{name}": entry for name, entry in COMMON_TASK.items()})
    TABLE.update({f"{_conversion}.id": ROUND_TRIP, f"{_conversion}.type": ROUND_TRIP,
                  f"{_conversion}.from_": ROUND_TRIP, f"{_conversion}.timeout": TIMEOUT})
TABLE.update({f"CsvToIon.{name}": CSV_READING for name in (
    "header", "fieldSeparator", "textDelimiter", "skipEmptyRows", "errorOnDifferentFieldCount", "skipRows", "charset")})
TABLE.update({f"IonToCsv.{name}": CSV_WRITING for name in (
    "header", "fieldSeparator", "textDelimiter", "lineDelimiter", "alwaysDelimitText", "charset", "dateFormat",
    "dateTimeFormat", "timeZoneId")})
TABLE["IonToCsv.timeFormat"] = REFUSED
TABLE.update({"JsonToIon.charset": JSON_SHAPES, "JsonToIon.newLine": JSON_SHAPES, "IonToJson.charset": JSON_SHAPES,
              "IonToJson.newLine": JSON_SHAPES, "IonToJson.timeZoneId": JSON_SHAPES})

# -- fs.local tasks (workers/plugins/local_files.py)
LF = "tests/unit/test_local_file_tasks.py::"
LOCAL_ALL = LF + "test_list_copy_move_delete_on_the_workers_disk"
LOCAL_ERRORS = LF + "test_what_would_lose_data_or_leave_the_allowed_folders_fails_saying_why"
for _local, _names in (("LocalList", ("from_", "regExp", "recursive", "maxFiles")),
                       ("LocalCopy", ("from_", "to", "overwrite")), ("LocalMove", ("from_", "to", "overwrite")),
                       ("LocalDelete", ("from_", "recursive", "errorOnMissing"))):
    TABLE.update({f"{_local}.{name}": entry for name, entry in COMMON_TASK.items()})
    TABLE.update({f"{_local}.{name}": LOCAL_ALL for name in ("id", "type", *_names)})
    TABLE[f"{_local}.timeout"] = TIMEOUT
TABLE["LocalDelete.errorOnMissing"] = LOCAL_ERRORS

# -- PostgreSQL COPY (workers/plugins/sql_copy.py)
COPY = "tests/integration/test_sql_tasks.py::test_postgres_copy_in_and_copy_out_stream_files_through_copy"
COPY_OPTIONS = "tests/integration/test_sql_tasks.py::test_postgres_copy_options_reach_the_server"
for _copy, _names in (("PostgresCopyIn", ("from_", "forceNotNull")), ("PostgresCopyOut", ("sql",))):
    TABLE.update({f"{_copy}.{name}": entry for name, entry in COMMON_TASK.items()})
    TABLE.update({f"{_copy}.{name}": COPY for name in (
        "id", "type", "url", "table", "columns", "format", "delimiter", "nullString", "header", *_names)})
    TABLE.update({f"{_copy}.{name}": COPY_OPTIONS for name in ("quote", "escape", "encoding", "oids")})
    TABLE.update({f"{_copy}.{name}": SQL_ERRORS for name in ("username", "password")})  # the shared connection
    TABLE[f"{_copy}.timeout"] = TIMEOUT
TABLE.update({"PostgresCopyIn.freeze": COPY_OPTIONS, "PostgresCopyIn.forceNull": COPY_OPTIONS,
              "PostgresCopyOut.forceQuote": COPY_OPTIONS})

# -- the Webhook trigger (app/model/webhook.py, served by app/api/webhooks.py)
WEBHOOK_TRIGGER = ("tests/integration/test_api_server.py::"
                   "test_a_webhook_starts_one_execution_with_the_request_and_can_return_its_outputs")
TABLE.update({f"WebhookTrigger.{name}": WEBHOOK_TRIGGER for name in (
    "id", "type", "key", "wait", "returnOutputs", "inputs")})
TABLE.update({"WebhookTrigger.description": DOCS, "WebhookTrigger.disabled": WEBHOOK_TRIGGER,
              "WebhookTrigger.conditions": REFUSED})
