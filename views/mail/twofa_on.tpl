Subject: Two-factor sign-in is on

Hello,

Two-factor sign-in was just turned on for your {{SITE_NAME}} account:
each sign-in now asks for a code from your authenticator app.

If this was not you, reset your password at once and tell us:

  {{BASE_URL}}/password/forgot

-- 
{{SITE_NAME}}
