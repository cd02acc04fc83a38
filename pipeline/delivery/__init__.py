"""Delivery of runs to the project's forge, and review comments that come back as runs.

- ``selectors``: where a run's tree came from (``run_import_source``: the import it descends
  from), the trees a delivery compares, a run's delivery as the API shows it.
- ``services``: ask for a delivery (``run_deliver``, ``run_deliver_when_completed``), queue
  the ones waiting for their run (``delivery_on_run_completed``), and carry one out
  (``delivery_execute``, the task's body): one commit on the branch through
  ``repositories.delivery``, then the pull request.
- ``messages``: the commit message and the pull request's title and body.
- ``hooks``: a verified review comment on one of our pull requests becomes one follow-up
  run that delivers to the same branch (``review_comment_receive``).
- ``tasks``: the Celery tasks (``pipeline.deliver_run``, ``pipeline.deliveries_resend``).

The forge's credentials are decrypted inside ``repositories.delivery`` during the task, and
nowhere else: no event, log line, step or prompt carries them.
"""
