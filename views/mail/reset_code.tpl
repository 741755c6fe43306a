Subject: Your password reset code

Hello {{NAME}},

Your code to set a new password is:

  {{CODE}}

It is valid for 10 minutes and can be used once. Enter it here:

  {{RESET_URL}}

If you did not ask for this, ignore this mail: your password stays as it is.

-- 
{{SITE_NAME}}
