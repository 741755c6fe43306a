Subject: Your password was changed

Hello,

The password of your {{SITE_NAME}} account was just changed, and every
session was logged out.

If this was not you, reset your password at once:

  {{BASE_URL}}/password/forgot

-- 
{{SITE_NAME}}
