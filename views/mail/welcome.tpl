Subject: Welcome to {{SITE_NAME}}

Hello {{NAME}},

Your account is ready. You can raise a ticket and follow it here:

  {{BASE_URL}}/tickets

-- 
{{SITE_NAME}}
