Subject: Two-factor sign-in is off

Hello,

Two-factor sign-in was just turned off for your {{SITE_NAME}} account.

If this was not you, reset your password at once and tell us:

  {{BASE_URL}}/password/forgot

-- 
{{SITE_NAME}}
