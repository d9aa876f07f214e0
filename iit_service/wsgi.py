import os

from django.core.wsgi import get_wsgi_application

from iit_service.after_response import AfterResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")

application = AfterResponse(get_wsgi_application())
