"""Monthly report benchmark: ``monthly_report`` over a generated month on PostgreSQL."""
