"""The Monitoring section of the Django admin: pages, their reads, and server-side SVG charts."""
