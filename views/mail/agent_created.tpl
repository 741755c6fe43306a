Subject: Your agent account at {{SITE_NAME}}

Hello {{NAME}},

An administrator created an agent account for you.
Set your password with this code:

  {{CODE}}

It is valid for 72 hours and can be used once. Enter it here:

  {{RESET_URL}}

-- 
{{SITE_NAME}}
