Subject: New sign-in to your account

Hello,

Your {{SITE_NAME}} account was just signed in to from a browser it has not
used before.

  Time:     {{TIME}}
  Address:  {{ADDR}}
  Browser:  {{BROWSER}}

If this was you, there is nothing to do.

If it was not, end every session and change your password at once:

  {{BASE_URL}}/account/sessions

-- 
{{SITE_NAME}}
