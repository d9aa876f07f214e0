import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from iit_service.after_response import AfterResponse
from iit_service.db_wait import bound_database_waits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")

application = AfterResponse(get_wsgi_application())
# A request fails fast (503) on a database that stopped answering, instead of holding its worker thread.
if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
    bound_database_waits(settings.DB_WEB_WAIT_TIMEOUT)
