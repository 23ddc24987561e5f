# The Celery app lives in dispatchsite.celery; it is not imported here because
# every CLI call would pay for it. Celery processes load it with -A.
