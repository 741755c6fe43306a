Subject: [#{{TICKET}}] Closed automatically

Hello {{NAME}},

Ticket #{{TICKET}}, "{{SUBJECT}}", was resolved {{DAYS}} days ago without a
reply from you, so it is now closed. You can reopen it at any time:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
