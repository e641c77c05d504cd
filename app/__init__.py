"""inbound-triage: genuine, sales_pitch or spam for LinkedIn invites and messages, with the evidence."""
