Subject: Your agent account is approved

Hello {{NAME}},

An administrator approved your agent account. Log in here:

  {{BASE_URL}}/login

-- 
{{SITE_NAME}}
